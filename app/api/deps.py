"""Route dependencies named as types: settings, the queue, a DB session, the caller, its job, request slots.

Database work of async dependencies goes through run_db: on the event loop for SQLite (a
local read costs less than the thread-pool hop around it), in the thread pool otherwise.

No dependency here holds a database connection past the route function: a session would
otherwise stay checked out while a response streams or a slow client sends its body, and a
few such clients would drain the pool (FastAPI closes request-scoped yield dependencies only
after the response has been sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from fastapi.security.http import HTTPAuthorizationCredentials
from python_multipart.multipart import parse_options_header
from sqlalchemy.orm import Session

from akd_service.config import Settings
from akd_service.db import job_status
from akd_service.db import jobs as job_store
from akd_service.db.job_status import JobView
from akd_service.db.models import LOCAL_OWNER, Job
from akd_service.db.session import SessionLocal, get_engine, queries_inline
from akd_service.keys import verify_key
from akd_service.queue import Queue
from app.api.limits import SlotLimiter
from app.api.problems import ApiProblem

P = ParamSpec("P")
R = TypeVar("R")


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (async: no I/O, so no thread-pool hop)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_app_queue(request: Request) -> Queue:
    """The queue the app was built with: where a new job's id is sent to wake a worker."""
    queue: Queue = request.app.state.queue
    return queue


QueueDep = Annotated[Queue, Depends(get_app_queue)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    """A session for the route function, closed as soon as it returns (before the response)."""
    session = SessionLocal(settings)
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_db, scope="function")]

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="akd"'}
# Declares the bearer scheme in the OpenAPI document; the header is checked in get_owner,
# which words its own 401s.
_bearer = HTTPBearer(auto_error=False, description="An API key from `akd keys create NAME`.")


def _key_owner(settings: Settings, token: str) -> str:
    """The id of the live key `token` (a session of its own, closed at once); else 401."""
    # Closed before the route runs: uploads and event streams that follow must not keep a
    # connection checked out.
    with SessionLocal(settings) as session:
        key = verify_key(session, token)
        key_id = key.id if key is not None else None
    if key_id is None:
        raise ApiProblem(
            401,
            "The API key is unknown or revoked; check the key or create a new one "
            "with `akd keys create NAME`.",
            slug="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="akd", error="invalid_token"'},
        )
    return key_id


def _bearer_token(request: Request, settings: Settings) -> str | None:
    """The caller's API key as sent (None when keys are off); 401 when none is sent."""
    if not settings.require_keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "This server requires an API key: send 'Authorization: Bearer <key>' "
            "(create one with `akd keys create NAME`).",
            slug="unauthorized",
            headers=_UNAUTHORIZED,
        )
    return token.strip()


_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def run_db(settings: Settings, load: Callable[P, R], *args: P.args, **kw: P.kwargs) -> R:
    """`load(*args, **kw)`: inline for SQLite, in the thread pool for a network database."""
    if queries_inline(settings):
        return load(*args, **kw)
    return await run_in_threadpool(load, *args, **kw)


# Async, so that keys-off requests (no I/O at all) skip the thread pool; a key lookup runs
# through run_db.
async def get_owner(request: Request, settings: SettingsDep, _credentials: _Credentials) -> str:
    """The owner id of the caller: its API key's id, or 'local' when keys are off."""
    token = _bearer_token(request, settings)
    if token is None:
        return LOCAL_OWNER
    return await run_db(settings, _key_owner, settings, token)


OwnerDep = Annotated[str, Depends(get_owner)]


def job_not_found(job_id: str) -> ApiProblem:
    """The 404 for a job that does not exist or belongs to another caller (indistinguishable)."""
    return ApiProblem(
        404,
        f"There is no job {job_id[:64]!r} for this caller; list yours with GET /jobs.",
        field="id",
        slug="job-not-found",
    )


def _owner_of(settings: Settings, token: str | None) -> str:
    return LOCAL_OWNER if token is None else _key_owner(settings, token)


def _load_owned(settings: Settings, job_id: str, token: str | None) -> Job:
    owner = _owner_of(settings, token)
    with SessionLocal(settings) as session:
        job = job_store.get_job_for_owner(session, job_id, owner)
    # Closing the session detaches the row with every column loaded (expire_on_commit off).
    if job is None:
        raise job_not_found(job_id)
    return job


def _load_owned_status(settings: Settings, job_id: str, token: str | None) -> JobView:
    owner = _owner_of(settings, token)
    job = job_status.job_status_for_owner(get_engine(settings), job_id, owner)
    if job is None:
        raise job_not_found(job_id)
    return job


async def get_owned_job(
    job_id: Annotated[str, Path()],
    request: Request,
    settings: SettingsDep,
    _credentials: _Credentials,
) -> Job:
    """The caller's job named by the path's job_id, else 404 (401 without a valid key).

    The key lookup and the job load share one call: on the event loop for SQLite, one
    thread-pool hop for a network database.
    """
    token = _bearer_token(request, settings)
    return await run_db(settings, _load_owned, settings, job_id, token)


OwnedJob = Annotated[Job, Depends(get_owned_job)]


async def get_owned_status(
    job_id: Annotated[str, Path()], request: Request, _credentials: _Credentials
) -> JobView:
    """What GET /jobs/{id} shows of the caller's job (its public columns), else 404 or 401."""
    # Every status poll: the columns read without the ORM (akd_service.db.job_status), and the
    # settings taken here rather than through SettingsDep, one dependency less to solve.
    settings = await get_app_settings(request)
    token = _bearer_token(request, settings)
    return await run_db(settings, _load_owned_status, settings, job_id, token)


OwnedJobStatus = Annotated[JobView, Depends(get_owned_status)]


async def _stream_slot(request: Request, job: OwnedJob) -> AsyncIterator[None]:
    # The job the route streams, already loaded (FastAPI solves OwnedJob once per request):
    # its owner is the caller, with no second key lookup.
    limiter: SlotLimiter = request.app.state.stream_slots
    with limiter.hold(job.owner):
        yield  # released when the response has been sent, or the client went away


async def _upload_slot(request: Request, owner: OwnerDep) -> AsyncIterator[None]:
    limiter: SlotLimiter = request.app.state.upload_slots
    with limiter.hold(owner):
        yield


StreamSlot = Annotated[None, Depends(_stream_slot)]
UploadSlot = Annotated[None, Depends(_upload_slot)]


def slot_limiters(settings: Settings) -> tuple[SlotLimiter, SlotLimiter]:
    """The (event stream, upload) limiters of one app."""
    streams = SlotLimiter("event streams", "AKD_MAX_STREAMS_PER_KEY", settings.max_streams_per_key)
    uploads = SlotLimiter("uploads", "AKD_MAX_UPLOADS_PER_KEY", settings.max_uploads_per_key)
    return streams, uploads


def _check_json(request: Request, *, body_optional: bool) -> None:
    raw = request.headers.get("content-type")
    if raw is None and body_optional and request.headers.get("content-length", "0") == "0":
        return
    media, _ = parse_options_header(raw or "")
    if media != b"application/json":
        raise ApiProblem(
            415,
            f"the request body must be application/json, not {(raw or 'none')[:60]!r}; "
            "send it with 'Content-Type: application/json'",
            title="Unsupported media type",
            field="Content-Type",
            slug="unsupported-media-type",
        )


# A web page on another site can POST text/plain or a form without a CORS preflight;
# insisting on JSON takes that path away.
def require_json_body(request: Request) -> None:
    """415 unless the body is declared application/json."""
    _check_json(request, body_optional=False)


def require_json_if_body(request: Request) -> None:
    """415 when a body is sent that is not application/json (no body at all is fine)."""
    _check_json(request, body_optional=True)


JsonBody = Depends(require_json_body)
JsonBodyIfAny = Depends(require_json_if_body)
