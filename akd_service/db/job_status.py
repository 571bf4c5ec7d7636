"""The status read of one job: its public columns by id and owner, in one pre-built Core select.

Every polling client makes this read, so it skips what the ORM adds for a row it will only
serialise (a Session, identity map, instance state): a pooled connection runs a `select` of
the columns the status document shows, built once. The row is read at the time of the call;
nothing is cached between calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Engine, bindparam, select

from akd_service.db.models import Job


class JobView(Protocol):
    """What the status document is built from: a Job row, or the row of STATUS_OF_OWNER."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def phase(self) -> str | None: ...
    @property
    def progress(self) -> float: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def cancel_requested(self) -> bool: ...
    @property
    def failure_reason(self) -> str | None: ...
    @property
    def metrics(self) -> dict[str, Any] | None: ...
    @property
    def artifacts(self) -> list[str]: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def updated_at(self) -> datetime: ...


# The same column types as the ORM's (JSON decoded, datetimes aware UTC); the owner and the
# lease columns stay in the database.
STATUS_COLUMNS = (
    Job.id, Job.state, Job.phase, Job.progress, Job.attempt, Job.max_attempts,
    Job.cancel_requested, Job.failure_reason, Job.metrics, Job.artifacts, Job.spec,
    Job.created_at, Job.started_at, Job.finished_at, Job.updated_at,
)  # fmt: skip
# Built once: building and caching-key a select per call costs a tenth of the read's budget.
STATUS_OF_OWNER = select(*STATUS_COLUMNS).where(
    Job.id == bindparam("job_id"), Job.owner == bindparam("owner")
)


def job_status_for_owner(engine: Engine, job_id: str, owner: str) -> JobView | None:
    """The job's status columns if it exists and belongs to `owner` (else None, as for a 404)."""
    with engine.connect() as conn:
        row = conn.execute(STATUS_OF_OWNER, {"job_id": job_id, "owner": owner}).one_or_none()
    # A Row's attributes are the selected columns, named as JobView names them.
    return cast("JobView | None", row)
