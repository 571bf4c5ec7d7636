"""GET /jobs/{id}/events: the job's progress as server-sent events, replayable by id."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from akd_service.config import Settings
from akd_service.db import jobs as job_store
from akd_service.db.session import session_scope
from akd_service.db.states import FINAL_STATES
from app.api.deps import OwnedJob, SettingsDep, StreamSlot
from app.api.problems import ApiProblem

router = APIRouter(prefix="/jobs", tags=["jobs"])

# Event ids are 64-bit database integers: anything longer or larger cannot name an event
# (and would overflow the query, or int()'s digit limit, instead of getting a clear 422).
MAX_EVENT_ID = 2**63 - 1
_EVENT_ID = re.compile(r"[0-9]{1,19}")
# Published for clients (18 digits are always in range); parse_event_id words the 422 itself.
_EVENT_ID_SCHEMA: dict[str, Any] = {"pattern": "^[0-9]{1,18}$"}


def parse_event_id(raw: str, field: str) -> int:
    """An event id given by a client: 1 to 19 ASCII digits, at most 2**63 - 1; else 422."""
    text = raw.strip()
    value = int(text) if _EVENT_ID.fullmatch(text) else None
    if value is None or value > MAX_EVENT_ID:
        raise ApiProblem(
            422,
            f"{field} must be the numeric id of an event (0 to {MAX_EVENT_ID}), not {raw[:40]!r}",
            field=field,
        )
    return value


def format_sse(event_id: int | None, kind: str, data: object) -> str:
    """One SSE frame: id, event name and a one-line JSON payload."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _poll(settings: Settings, job_id: str, after: int) -> tuple[str | None, list[str], int]:
    # The state is read BEFORE the events: if it is final here, every event the worker wrote
    # (they commit together with or before the final state) is in the batch that follows.
    with session_scope(settings) as session:
        job = job_store.get_job(session, job_id)
        state = job.state if job else None
        frames, last = [], after
        for ev in job_store.events_after(session, job_id, after):
            frames.append(format_sse(ev.id, ev.kind, {"job_id": job_id, **ev.data}))
            last = ev.id
        return state, frames, last


async def _stream(
    request: Request, settings: Settings, job_id: str, after: int
) -> AsyncIterator[str]:
    started = last_sent = time.monotonic()
    yield f"retry: {int(settings.sse_poll_s * 2000)}\n\n"
    while True:
        state, frames, after = await run_in_threadpool(_poll, settings, job_id, after)
        for frame in frames:
            yield frame
        if frames:
            last_sent = time.monotonic()
            continue  # there may be more than one batch: drain before deciding to end
        if state is None or state in FINAL_STATES:
            yield format_sse(None, "end", {"job_id": job_id, "state": state})
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - started >= settings.sse_max_duration_s:
            # Bounded streams free their slot; EventSource reconnects with Last-Event-ID.
            yield ": stream time limit reached (AKD_SSE_MAX_DURATION_S); reconnect\n\n"
            return
        if time.monotonic() - last_sent >= settings.sse_keepalive_s:
            yield ": keep-alive\n\n"  # a comment: keeps proxies from closing an idle stream
            last_sent = time.monotonic()
        await asyncio.sleep(settings.sse_poll_s)


@router.get(
    "/{job_id}/events",
    summary="Stream a job's progress (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        429: {"description": "Too many open event streams for this key"},
    },
)
def job_events(
    job: OwnedJob,
    request: Request,
    settings: SettingsDep,
    _slot: StreamSlot,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", json_schema_extra=_EVENT_ID_SCHEMA)
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            description=f"Replay events after this id (0 to {MAX_EVENT_ID}), as Last-Event-ID.",
            json_schema_extra=_EVENT_ID_SCHEMA,
        ),
    ] = None,
) -> StreamingResponse:
    """Events after Last-Event-ID (header or query), then live ones; ends when the job ends.

    A stream also ends after AKD_SSE_MAX_DURATION_S; reconnect with Last-Event-ID to go on.
    """
    after = 0
    if last_event_id is not None:
        after = parse_event_id(last_event_id, "last_event_id")
    if last_event_id_header is not None:
        after = max(after, parse_event_id(last_event_id_header, "Last-Event-ID"))
    return StreamingResponse(
        _stream(request, settings, job.id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
