"""Jobs: submit (validated before anything is created), list, show, cancel."""

from __future__ import annotations

import json
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from akd_core.spec import parse_spec
from akd_service.db import jobs as job_store
from akd_service.db import listing
from akd_service.db.job_status import JobView
from akd_service.db.models import Job
from akd_service.db.session import session_scope
from app.api.checks import validate_sources
from app.api.deps import (
    JsonBody,
    JsonBodyIfAny,
    OwnedJob,
    OwnedJobStatus,
    OwnerDep,
    QueueDep,
    SessionDep,
    SettingsDep,
)
from app.api.problems import ApiProblem
from app.schemas import JobLinks, JobPublic, JobsPage

log = logging.getLogger("akd.api")
router = APIRouter(prefix="/jobs", tags=["jobs"])
MAX_SPEC_BYTES = 1024 * 1024
MAX_SPEC_DEPTH = 32  # free-form option dicts are the deepest part of a real spec

# The body is read raw so that parse_spec's field-naming messages reach the caller;
# the schema is still published (components are added in app.main.custom_openapi).
_SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
    }
}


def job_public(job: JobView) -> JobPublic:
    """The public view of a job row, with links."""
    base = f"/jobs/{job.id}"
    return JobPublic(
        id=job.id,
        state=job.state,
        phase=job.phase,
        progress=job.progress,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        failure_reason=job.failure_reason,
        metrics=json_safe(job.metrics),
        artifacts=list(job.artifacts or []),
        spec=job.spec,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
        links=JobLinks(
            self=base,
            events=f"{base}/events",
            cancel=f"{base}/cancel",
            artifacts={n: f"{base}/artifacts/{n}" for n in job.artifacts or []},
        ),
    )


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


async def _read_spec_body(request: Request) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SPEC_BYTES:
        raise ApiProblem(413, f"a job spec is at most {MAX_SPEC_BYTES} bytes of JSON")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SPEC_BYTES:
            raise ApiProblem(413, f"a job spec is at most {MAX_SPEC_BYTES} bytes of JSON")
    try:
        data = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise _too_deep() from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(
            422,
            f"the body is not valid JSON ({exc}); send the job spec as application/json",
            title="Invalid job spec",
            field="spec",
            slug="spec",
        ) from exc
    if _depth(data) > MAX_SPEC_DEPTH:
        raise _too_deep()
    return data


def _refuse_constant(name: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259) and could not be returned in a response.
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range for a number")
    return value


def _too_deep() -> ApiProblem:
    return ApiProblem(
        422,
        f"the JSON body is nested deeper than {MAX_SPEC_DEPTH} levels; no job spec needs that",
        title="Invalid job spec",
        field="spec",
        slug="spec",
    )


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_SPEC_DEPTH:
            break
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        stack.extend((child, level + 1) for child in children)
    return deepest


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    summary="Submit a distillation job",
    openapi_extra=_SPEC_BODY,
    responses={
        413: {"description": "A spec over 1 MiB"},
        415: {"description": "Not application/json"},
        422: {"description": "Invalid spec, unknown upload or format mismatch"},
    },
    dependencies=[JsonBody],
)
async def create_job(
    request: Request, response: Response, settings: SettingsDep, owner: OwnerDep, queue: QueueDep
) -> JobPublic:
    """Validate the spec and its uploads, create the job, wake a worker; 202 + Location."""
    data = await _read_spec_body(request)
    if not isinstance(data, dict):
        raise ApiProblem(
            422, "the job spec must be a JSON object", title="Invalid job spec", field="spec"
        )
    spec = parse_spec(data)

    def _create() -> Job:
        with session_scope(settings) as session:
            resolved = validate_sources(
                session, spec, owner, settings.uploads, settings.limits(), settings.worker_memory_gb
            )
            return job_store.create_job(
                session, owner, resolved.model_dump(mode="json"), settings.max_attempts
            )

    job = await run_in_threadpool(_create)
    try:
        await run_in_threadpool(queue.enqueue, job.id)
    except Exception:
        # The row is the truth: the reaper re-sends a job still queued after stale_after_s
        # (and every queued job when `akd serve` or the reaper starts), so the broker being
        # down delays the job but does not lose it.
        log.exception("could not enqueue job %s; it stays queued", job.id)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)


@router.get("", response_model=JobsPage, summary="List your jobs, newest first")
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    offset: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    state: Annotated[
        str | None, Query(pattern="^(queued|running|cancelling|succeeded|failed|cancelled)$")
    ] = None,
) -> JobsPage:
    """One page of jobs; follow `next` (as `cursor`) for the rest."""
    try:
        items, nxt = listing.list_jobs(
            session, owner, limit=limit, cursor=cursor, offset=offset, state=state
        )
    except ValueError as exc:
        raise ApiProblem(
            422, f"{exc}; use the `next` value of a previous page", field="cursor"
        ) from exc
    return JobsPage(items=[job_public(j) for j in items], next=nxt)


@router.get("/{job_id}", response_model=JobPublic, summary="Show a job")
async def get_job(job: OwnedJobStatus) -> Response:
    """State, phase, progress, attempt, metrics and links of one job."""
    # The hot path of every polling client: serialised once by pydantic, straight to bytes
    # (returning the model would validate it a second time against response_model).
    return Response(job_public(job).model_dump_json(), media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobPublic,
    summary="Cancel a job",
    dependencies=[JsonBodyIfAny],
    responses={
        409: {"description": "The job already ended"},
        415: {"description": "A body that is not application/json"},
    },
)
def cancel_job(job: OwnedJob, session: SessionDep) -> JobPublic:
    """Cancel a queued job at once; ask a running one to stop (it does within one step)."""
    job_id = job.id
    if job_store.request_cancel(session, job_id) is None:
        current = job_store.get_job(session, job_id)
        state = current.state if current else job.state
        raise ApiProblem(
            409,
            f"job {job_id} already ended ({state}); there is nothing to cancel",
            title="Job already finished",
            slug="job-finished",
        )
    current = job_store.get_job(session, job_id)
    assert current is not None
    return job_public(current)
