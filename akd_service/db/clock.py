"""The database server's clock: leases and staleness are judged by it, never by a worker's.

Workers on several machines (or one with a skewed clock) would otherwise disagree about
whether a heartbeat is stale, and a live job could be taken over. Timestamps are stored as
naive UTC (see models.UTCDateTime), so the SQL below yields naive UTC on every dialect.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from akd_service.db.models import UTCDateTime


class db_utcnow(FunctionElement[datetime]):  # noqa: N801 - reads like the SQL function it is
    """SQL for "now, in UTC, without a zone" as the database server sees it."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_utcnow)
def _default(element: Any, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_utcnow, "postgresql")
def _postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    # now() is a timestamptz; AT TIME ZONE 'UTC' makes it naive UTC whatever the session's
    # TimeZone setting is. clock_timestamp(), not now(): now() is frozen at transaction start.
    return "(clock_timestamp() AT TIME ZONE 'UTC')"


@compiles(db_utcnow, "sqlite")
def _sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    # CURRENT_TIMESTAMP has whole seconds only; %f gives milliseconds, in the same
    # "YYYY-MM-DD HH:MM:SS.fff" layout SQLAlchemy stores, so text comparisons stay ordered.
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def db_now(session: Session) -> datetime:
    """The database server's current time (aware UTC)."""
    now = session.execute(select(db_utcnow())).scalar_one()
    assert isinstance(now, datetime)
    return now
