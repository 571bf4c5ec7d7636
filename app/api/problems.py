"""RFC 9457 problem+json: one response shape for every error the API can return."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from akd_core.errors import AKDError, DatasetError, JobCancelled, SpecError, TeacherLoadError

log = logging.getLogger("akd.api")
PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:akd:problem:"

# Which status each library error maps to: all are the caller's input, hence 4xx.
AKD_STATUS: dict[type[AKDError], int] = {
    SpecError: 422,
    TeacherLoadError: 422,
    DatasetError: 422,
    JobCancelled: 409,
}


class ApiProblem(Exception):
    """Raise in a route to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        field: str | None = None,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.field = field
        self.slug = slug
        self.headers = dict(headers or {})


def problem_response(request: Request, problem: ApiProblem) -> JSONResponse:
    """Build the problem+json response (type, title, status, detail, instance, field)."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.slug if problem.slug else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
    }
    if problem.field:
        body["field"] = problem.field
    return JSONResponse(
        body,
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers or None,
    )


def _loc_to_field(loc: Sequence[Any]) -> str | None:
    # FastAPI prefixes the location with where it came from ("body", "query", "path", ...).
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or None


async def _on_api_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    return problem_response(request, exc)


async def _on_akd_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AKDError)
    status = next((s for cls, s in AKD_STATUS.items() if isinstance(exc, cls)), 400)
    slug = type(exc).__name__.removesuffix("Error").lower() or "error"
    detail = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return problem_response(
        request, ApiProblem(status, detail, title=exc.title, field=exc.field, slug=slug)
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    field = _loc_to_field(first.get("loc", ()))
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    detail = f"{field}: {msg}" if field else msg
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem(s))"
    return problem_response(
        request, ApiProblem(422, detail, title="Invalid request", field=field, slug="validation")
    )


def _allowed_methods(request: Request) -> list[str]:
    # Starlette names only the first route matching the path; several may (GET and POST /jobs).
    def full(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] == Match.FULL for route in request.app.routes)

    return [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if full(m)]


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404 and exc.detail == "Not Found":
        detail = f"There is no resource at {request.url.path}; the API is described at /docs."
    elif status == 405:
        allowed = _allowed_methods(request)
        detail = f"{request.method} is not allowed on {request.url.path}"
        detail += f"; use {', '.join(allowed)}." if allowed else "."
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        return problem_response(request, ApiProblem(status, detail, headers=headers))
    else:
        detail = str(exc.detail)
    return problem_response(request, ApiProblem(status, detail, headers=exc.headers))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Only true bugs land here: log them with the traceback, tell the caller nothing internal.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        ApiProblem(
            500,
            "The server hit an unexpected error; it was logged. Retry, and report it if it persists.",
            slug="internal",
        ),
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error (HTTP, validation, library, unexpected) through problem+json."""
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(AKDError, _on_akd_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
