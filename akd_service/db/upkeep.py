"""The reaper's database work: which jobs need a new message, giving up, old events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from akd_service.db.clock import db_now, db_utcnow
from akd_service.db.models import Event, Job
from akd_service.db.session import rows_changed
from akd_service.db.states import ACTIVE_STATES, CANCELLED, FAILED, FINAL_STATES, QUEUED

# The wait between re-sends doubles; past this exponent it stops growing (2^16 periods).
MAX_BACKOFF_EXPONENT = 16


@dataclass(frozen=True)
class Unclaimed:
    """A job that waits for a worker: queued for long, or running with a stale heartbeat."""

    id: str
    resends: int
    resent_at: datetime | None


def _waiting(queued_before: datetime | None, stale_before: datetime) -> ColumnElement[bool]:
    # Queued since before queued_before (None: any queued job), or active with a heartbeat
    # older than stale_before (its worker is gone).
    queued = Job.state == QUEUED
    if queued_before is not None:
        queued = and_(queued, Job.created_at < queued_before)
    stale = and_(
        Job.state.in_(ACTIVE_STATES),
        or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before),
    )
    return or_(queued, stale)


def resend_due(
    session: Session, stale_after_s: float, *, ignore_backoff: bool = False
) -> list[Unclaimed]:
    """Waiting jobs whose next re-send is due, oldest first, by the database's clock.

    The first re-send comes stale_after_s after the job was queued or went stale; each
    further one waits twice as long as the one before (stale_after_s * 2^(resends - 1)),
    so a job nobody can run costs a logarithmic number of messages, not one per period.
    ignore_backoff (at start, when the broker may have lost every message) takes every
    queued and stale job at once.
    """
    now = db_now(session)
    stale_cutoff = now - timedelta(seconds=stale_after_s)
    query = (
        select(Job.id, Job.resends, Job.resent_at)
        .where(_waiting(None if ignore_backoff else stale_cutoff, stale_cutoff))
        .order_by(Job.created_at)
    )
    due = []
    for job_id, resends, resent_at in session.execute(query):
        wait_s = stale_after_s * 2 ** min(max(resends - 1, 0), MAX_BACKOFF_EXPONENT)
        if ignore_backoff or resent_at is None or resent_at <= now - timedelta(seconds=wait_s):
            due.append(Unclaimed(job_id, resends, resent_at))
    return due


def mark_resent(session: Session, job_id: str) -> None:
    """Count one more message sent for the job (the claim resets the count)."""
    session.execute(
        update(Job).where(Job.id == job_id).values(resends=Job.resends + 1, resent_at=db_utcnow())
    )
    session.commit()


def give_up(session: Session, job: Unclaimed, stale_after_s: float) -> str | None:
    """Fail (or, if asked to, cancel) a job no worker claimed after all its re-sends.

    A compare-and-set on the re-send count: a claim that won in the meantime resets it,
    and then nothing is written. Returns the state written, or None.
    """
    row = session.execute(select(Job.cancel_requested).where(Job.id == job.id)).scalar()
    state = CANCELLED if row else FAILED
    reason = (
        None
        if state == CANCELLED
        else (
            f"no worker took this job after {job.resends} re-sent messages over about "
            f"{_total_wait_s(stale_after_s, job.resends) / 3600:.1f} h; check that a worker is "
            "running and connected to the same broker and database, then submit it again"
        )
    )
    cutoff = db_now(session) - timedelta(seconds=stale_after_s)
    now = db_utcnow()
    done = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.resends == job.resends, _waiting(cutoff, cutoff))
        .values(state=state, failure_reason=reason, finished_at=now, updated_at=now)
    )
    if rows_changed(done) != 1:
        session.rollback()
        return None
    data = {"state": state} | ({"failure_reason": reason} if reason else {})
    session.add(Event(job_id=job.id, kind="state", data=data))
    session.commit()
    return state


def _total_wait_s(stale_after_s: float, resends: int) -> float:
    return stale_after_s * sum(1 << min(k, MAX_BACKOFF_EXPONENT) for k in range(resends))


def purge_events(session: Session, older_than_days: float, batch: int = 1000) -> int:
    """Delete up to `batch` events of jobs that finished over older_than_days ago."""
    cutoff = db_now(session) - timedelta(days=older_than_days)
    ids = (
        select(Event.id)
        .join(Job, Job.id == Event.job_id)
        .where(Job.state.in_(FINAL_STATES), Job.finished_at < cutoff)
    )
    # Select then delete by id: a bounded batch keeps each transaction (and lock) short.
    chosen = list(session.execute(ids.limit(batch)).scalars())
    if chosen:
        session.execute(delete(Event).where(Event.id.in_(chosen)))
    session.commit()
    return len(chosen)
