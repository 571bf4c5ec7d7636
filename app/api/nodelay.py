"""uvicorn's HTTP protocol with Nagle's algorithm off on every connection, whatever the socket.

`uvicorn --workers N` binds the listening socket itself with `socket.socket(family)`, so its
`proto` is 0 and asyncio (which sets TCP_NODELAY only when proto is IPPROTO_TCP) leaves Nagle
on for every accepted connection. A response then leaves in two small segments (head, body);
the second waits for the client's ACK of the first, which the client delays by ~40 ms: one
polling client saw a 48-52 ms p50 with two workers instead of ~3 ms with one. Run uvicorn
with `--http app.api.nodelay:Protocol` (as `akd serve` and docker-compose.yml do).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

try:  # the C parser when installed (a dependency), else the pure-Python one
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools missing
    # The same role under another class: mypy cannot see the two are interchangeable here.
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

UVICORN_HTTP = "app.api.nodelay:Protocol"


def set_nodelay(transport: asyncio.BaseTransport) -> bool:
    """Turn Nagle's algorithm off on a TCP transport; False for any other kind of socket."""
    sock: Any = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False  # a unix socket: no Nagle there
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    return False


class Protocol(_Base):
    """The HTTP protocol uvicorn would pick, with TCP_NODELAY set as a connection opens."""

    # asyncio.Protocol declares BaseTransport; uvicorn's own classes narrow it the same way.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
