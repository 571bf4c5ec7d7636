"""Job state transitions; each helper commits, since workers in other processes must see it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from akd_service.db.clock import db_now, db_utcnow
from akd_service.db.models import Event, Job
from akd_service.db.session import rows_changed
from akd_service.db.states import (
    ACTIVE_STATES,
    CANCELLED,
    CANCELLING,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
)


def new_id() -> str:
    """A fresh opaque id (uuid4 hex) for jobs and uploads."""
    return uuid.uuid4().hex


def create_job(session: Session, owner: str, spec: dict[str, Any], max_attempts: int) -> Job:
    """Insert a queued job and its first event."""
    job = Job(
        id=new_id(),
        owner=owner,
        spec=spec,
        state=QUEUED,
        progress=0.0,
        attempt=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        artifacts=[],
    )
    session.add(job)
    session.flush()
    session.add(Event(job_id=job.id, kind="state", data={"state": QUEUED}))
    session.commit()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    """The job row as stored now (bypassing the session's identity map)."""
    return session.execute(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()


# Built once: a select built per call costs ~0.1 ms of the status read's CPU budget.
_JOB_OF_OWNER = (
    select(Job)
    .where(Job.id == bindparam("job_id"), Job.owner == bindparam("owner"))
    .execution_options(populate_existing=True)
)


def get_job_for_owner(session: Session, job_id: str, owner: str) -> Job | None:
    """The job if it exists and belongs to `owner` (else None: callers answer 404 either way)."""
    params = {"job_id": job_id, "owner": owner}
    return session.execute(_JOB_OF_OWNER, params).scalar_one_or_none()


# --- events --------------------------------------------------------------------------------


def add_event(
    session: Session, job_id: str, kind: str, data: dict[str, Any] | None = None
) -> Event:
    """Record one event of a job (its id is the SSE id)."""
    ev = Event(job_id=job_id, kind=kind, data=data or {})
    session.add(ev)
    session.commit()
    return ev


def events_after(session: Session, job_id: str, after_id: int = 0, limit: int = 500) -> list[Event]:
    """The job's events with id > after_id, oldest first."""
    query = (
        select(Event)
        .where(Event.job_id == job_id, Event.id > after_id)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(session.execute(query).scalars())


# --- cancellation --------------------------------------------------------------------------


def request_cancel(session: Session, job_id: str) -> str | None:
    """Cancel a queued job at once or flag a running one; the new state, or None if final."""
    now = db_utcnow()
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == QUEUED)
        .values(state=CANCELLED, cancel_requested=True, finished_at=now, updated_at=now)
    )
    if rows_changed(done) == 1:
        session.add(Event(job_id=job_id, kind="state", data={"state": CANCELLED}))
        session.commit()
        return CANCELLED
    flagged = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(ACTIVE_STATES))
        .values(state=CANCELLING, cancel_requested=True, updated_at=now)
    )
    if rows_changed(flagged) == 1:
        session.add(Event(job_id=job_id, kind="state", data={"state": CANCELLING}))
        session.commit()
        return CANCELLING
    session.rollback()
    return None


def is_cancel_requested(session: Session, job_id: str) -> bool:
    """Whether someone asked to cancel the job (the worker polls this)."""
    flag = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar()
    return bool(flag)


# --- worker side: leases -------------------------------------------------------------------


def claim_job(session: Session, job_id: str, worker_id: str, stale_after_s: float) -> Job | None:
    """Take the job's lease with one compare-and-set; None when it is not ours to run.

    Claims a queued job, or takes over a running one whose heartbeat is older than
    stale_after_s (its worker died), while attempts remain. A stale job out of attempts is
    failed with a reason, and a stale job that was being cancelled becomes cancelled.
    Staleness is judged by the database's clock, never by this worker's.
    """
    now = db_utcnow()
    cutoff = db_now(session) - timedelta(seconds=stale_after_s)
    stale = and_(Job.state == RUNNING, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempt < Job.max_attempts,
            Job.cancel_requested.is_(False),
            or_(Job.state == QUEUED, stale),
        )
        .values(
            state=RUNNING,
            attempt=Job.attempt + 1,
            lease_owner=worker_id,
            heartbeat_at=now,
            started_at=now,
            updated_at=now,
            failure_reason=None,  # a reason left by a previous attempt's watchdog
            resends=0,
            resent_at=None,
        )
    )
    if rows_changed(result) == 1:
        job = get_job(session, job_id)
        assert job is not None
        session.add(
            Event(job_id=job_id, kind="state", data={"state": RUNNING, "attempt": job.attempt})
        )
        session.commit()
        return job
    session.commit()
    _settle_abandoned(session, job_id, cutoff)
    return None


def _settle_abandoned(session: Session, job_id: str, cutoff: datetime) -> None:
    # A stale job nobody may take over still needs a final state, or it would hang forever.
    job = get_job(session, job_id)
    if job is None or job.state not in ACTIVE_STATES:
        return
    if job.heartbeat_at is not None and job.heartbeat_at >= cutoff:
        return
    if job.state == CANCELLING or job.cancel_requested:
        state, reason = CANCELLED, None
    elif job.attempt >= job.max_attempts:
        state = FAILED
        reason = (
            f"the worker running this job stopped responding on each of its "
            f"{job.attempt} attempts (max_attempts={job.max_attempts}); "
            "check the worker logs for crashes or out-of-memory kills"
        )
    else:
        return
    now = db_utcnow()
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == job.state, Job.attempt == job.attempt)
        .values(state=state, failure_reason=reason, finished_at=now, updated_at=now)
    )
    if rows_changed(done) == 1:
        data = {"state": state} | ({"failure_reason": reason} if reason else {})
        session.add(Event(job_id=job_id, kind="state", data=data))
    session.commit()


def heartbeat(session: Session, job_id: str, worker_id: str) -> bool:
    """Refresh the lease (stamped with the database's clock); False once it is not ours."""
    now = db_utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.state.in_(ACTIVE_STATES))
        .values(heartbeat_at=now, updated_at=now)
    )
    session.commit()
    return rows_changed(result) == 1


def set_progress(
    session: Session, job_id: str, worker_id: str, *, phase: str | None, progress: float
) -> bool:
    """Record phase and progress (0..1) under the lease, refreshing the heartbeat too."""
    now = db_utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.state.in_(ACTIVE_STATES))
        .values(
            phase=phase, progress=max(0.0, min(1.0, progress)), heartbeat_at=now, updated_at=now
        )
    )
    session.commit()
    return rows_changed(result) == 1


def finish_job(
    session: Session,
    job_id: str,
    worker_id: str,
    state: str,
    failure_reason: str | None = None,
    metrics: dict[str, Any] | None = None,
    artifacts: list[str] | None = None,
) -> str | None:
    """Record the outcome under the lease; the state written, or None if the lease was lost.

    Cancel wins over success: a run that completed after someone asked to cancel ends
    `cancelled` (its files stay on disk but are not offered), because the user was told
    "cancelling". Only a job whose success was recorded first ignores a later cancel.
    A failure stays a failure: its reason says more than "cancelled" would.
    """
    if state not in FINAL_STATES:
        raise ValueError(f"finish_job state must be one of {sorted(FINAL_STATES)}, not {state!r}")
    ours = and_(Job.id == job_id, Job.lease_owner == worker_id)
    now = db_utcnow()
    values: dict[str, Any] = {
        "state": state,
        "failure_reason": failure_reason,
        "finished_at": now,
        "updated_at": now,
        "heartbeat_at": now,
    }
    if state == SUCCEEDED:
        values["progress"] = 1.0
        # Two compare-and-sets, each atomic: success only from running without a cancel flag;
        # otherwise (the flag won the race) the same lease records the cancellation.
        where = and_(ours, Job.state == RUNNING, Job.cancel_requested.is_(False))
    else:
        where = and_(ours, Job.state.in_(ACTIVE_STATES))
    if metrics is not None:
        values["metrics"] = metrics
    if artifacts is not None:
        values["artifacts"] = list(artifacts)
    written = state
    result = session.execute(update(Job).where(where).values(**values))
    if rows_changed(result) != 1 and state == SUCCEEDED:
        written = CANCELLED
        result = session.execute(
            update(Job)
            .where(ours, Job.state.in_(ACTIVE_STATES), Job.cancel_requested.is_(True))
            .values(state=CANCELLED, failure_reason=None, finished_at=now, updated_at=now,
                    heartbeat_at=now)
        )  # fmt: skip
    if rows_changed(result) != 1:
        session.rollback()
        return None
    data = {"state": written} | ({"failure_reason": failure_reason} if failure_reason else {})
    session.add(Event(job_id=job_id, kind="state", data=data))
    session.commit()
    return written


def stale_jobs(session: Session, stale_after_s: float) -> list[str]:
    """Ids of running/cancelling jobs whose heartbeat is older than stale_after_s."""
    cutoff = db_now(session) - timedelta(seconds=stale_after_s)
    query = select(Job.id).where(
        Job.state.in_(ACTIVE_STATES), or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
    )
    return list(session.execute(query).scalars())


def abandon_attempt(session: Session, job_id: str, worker_id: str, reason: str) -> str | None:
    """Give up this worker's attempt (its run hung); the job's state after, None if not ours.

    With attempts left the job goes stale at once (heartbeat cleared, the reason kept until a
    new attempt claims it) so the reaper's next message resumes it elsewhere; out of attempts
    it fails with `reason`; a job being cancelled ends cancelled.
    """
    job = get_job(session, job_id)
    if job is None or job.lease_owner != worker_id or job.state not in ACTIVE_STATES:
        return None
    if job.cancel_requested:
        return finish_job(session, job_id, worker_id, CANCELLED)
    if job.attempt >= job.max_attempts:
        return finish_job(session, job_id, worker_id, FAILED, reason)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.state.in_(ACTIVE_STATES))
        .values(heartbeat_at=None, failure_reason=reason, updated_at=db_utcnow())
    )
    if rows_changed(result) != 1:
        session.rollback()
        return None
    session.add(Event(job_id=job_id, kind="log", data={"message": reason, "attempt": job.attempt}))
    session.commit()
    return job.state
