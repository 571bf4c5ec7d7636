"""Keys-off mode guards: loopback sockets only, loopback Host names, no cross-site writes.

Without API keys anyone who can reach the API can use it, so it must be reachable only
from this machine's own programs: not over a public socket (e.g. `uvicorn --host 0.0.0.0`
run directly), not through a DNS name that rebinds to 127.0.0.1, and not from a web page
of another site that a local browser happens to show.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from akd_service.config import is_loopback
from app.api.problems import ApiProblem, problem_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCH = frozenset({"same-origin", "none"})  # `none`: typed in the address bar
GUARD_HEADERS = frozenset({b"host", b"origin", b"sec-fetch-site"})  # what the guard reads


def loopback_address(host: str) -> bool:
    """True for a loopback IP or name, including IPv4-mapped IPv6 (::ffff:127.0.0.1)."""
    host = host.strip("[]").lower()
    return is_loopback(host.removeprefix("::ffff:"))


def host_name(host_header: str) -> str:
    """The name part of a Host header: 'localhost:8000' -> 'localhost', '[::1]:80' -> '::1'."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _same_origin(origin: str, host: str) -> bool:
    # A browser's Origin is scheme://host[:port]; "null" (sandboxed pages, file://) is not ours.
    try:
        return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False


def keys_off_problem(scope: Scope, headers: dict[str, str]) -> ApiProblem | None:
    """Why a request may not be served by a keys-off API, or None when it may."""
    server = scope.get("server")
    # A unix socket (no port) is reachable only through the file system: local.
    if server and server[1] is not None and not loopback_address(str(server[0])):
        return ApiProblem(
            403,
            f"this API runs without keys but the request came in on {server[0]}, which is "
            "not a loopback address: set AKD_REQUIRE_KEYS=true (and create keys with "
            "`akd keys create NAME`) to serve other machines, or bind 127.0.0.1",
            title="API keys required",
            slug="keys-required",
        )
    host = headers.get("host")
    if host is not None and not loopback_address(host_name(host)):
        return ApiProblem(
            421,
            f"Host {host[:100]!r} is not a loopback name; without API keys this server "
            "answers only to localhost, 127.0.0.1 or [::1] (any port)",
            title="Host not served",
            field="Host",
            slug="untrusted-host",
        )
    if scope.get("method", "GET") in SAFE_METHODS:
        return None
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    cross_site = fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCH
    if origin is not None and not cross_site:
        cross_site = not _same_origin(origin, host or "")
    if cross_site:
        return ApiProblem(
            403,
            f"cross-site {scope.get('method')} refused (Origin {origin!r}, Sec-Fetch-Site "
            f"{fetch_site!r}): without API keys only pages served by this API (such as /docs) "
            "and non-browser clients may change anything",
            title="Cross-site request refused",
            slug="cross-site",
        )
    return None


class KeysOffGuard:
    """ASGI middleware refusing, with problem+json, what keys_off_problem names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Only the headers keys_off_problem reads: this runs on every request.
            headers = {
                name.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if (name := k.lower()) in GUARD_HEADERS
            }
            problem = keys_off_problem(scope, headers)
            if problem is not None:
                response = problem_response(Request(scope), problem)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
