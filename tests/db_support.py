"""Database helpers shared by the worker and lease tests."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from akd_service.db.models import Job, utcnow
from akd_service.db.session import session_scope


def backdate(settings, job_id: str, column: str, seconds: float) -> None:
    """Set the job's timestamp `column` to `seconds` before now (as if that much time passed)."""
    with session_scope(settings) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values({column: utcnow() - timedelta(seconds=seconds)})
        )
