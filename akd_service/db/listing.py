"""Listing a key's jobs newest first, with opaque cursors for the next page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from akd_service.db.models import Job


def encode_cursor(job: Job) -> str:
    """An opaque cursor pointing just past `job` in newest-first order."""
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Parse a cursor from encode_cursor; ValueError if it was not made by us."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), str(job_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"cursor {cursor[:40]!r} is not one this server issued") from exc


def list_jobs(
    session: Session,
    owner: str,
    *,
    limit: int = 20,
    cursor: str | None = None,
    offset: int | None = None,
    state: str | None = None,
) -> tuple[list[Job], str | None]:
    """The owner's jobs newest first, and the cursor of the next page (None on the last)."""
    query = select(Job).where(Job.owner == owner)
    if state is not None:
        query = query.where(Job.state == state)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id))
        )
    # id breaks ties between jobs created in the same microsecond, keeping pages disjoint.
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    if offset and not cursor:
        query = query.offset(offset)
    rows = list(session.execute(query).scalars())
    more = len(rows) > limit
    items = rows[:limit]
    return items, (encode_cursor(items[-1]) if more and items else None)
