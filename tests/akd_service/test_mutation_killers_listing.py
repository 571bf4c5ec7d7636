"""Listing details that `make mutation` showed untested: jobs created in the same instant,
the default page size, and a cursor together with an offset."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import update

from akd_service.db import jobs as job_store
from akd_service.db.listing import list_jobs
from akd_service.db.migrate import upgrade
from akd_service.db.models import Job
from akd_service.db.session import session_scope

SAME_INSTANT = datetime(2026, 1, 2, 3, 4, 5, 678901)


@pytest.fixture(autouse=True)
def _database(settings):
    settings.ensure_dirs()
    upgrade(settings)


def _jobs(settings, n: int, owner: str = "local") -> list[str]:
    with session_scope(settings) as s:
        return [
            job_store.create_job(s, owner, {"student": {"arch": "mlp"}}, 3).id for _ in range(n)
        ]


def _pages(settings, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    with session_scope(settings) as s:
        while True:
            items, cursor = list_jobs(s, "local", limit=limit, cursor=cursor)
            pages.append([j.id for j in items])
            if cursor is None:
                return pages


def test_jobs_created_in_the_same_instant_page_by_id_without_gaps_or_repeats(settings):
    made = _jobs(settings, 5)
    with session_scope(settings) as s:  # e.g. a batch submitted within one clock tick
        s.execute(update(Job).values(created_at=SAME_INSTANT))
        s.commit()
    by_id = sorted(made, reverse=True)
    assert _pages(settings, limit=2) == [by_id[:2], by_id[2:4], by_id[4:]]
    assert _pages(settings, limit=1) == [[i] for i in by_id]


def test_a_tie_in_time_does_not_bring_back_older_pages(settings):
    older, tied = _jobs(settings, 1), _jobs(settings, 3)
    with session_scope(settings) as s:
        s.execute(update(Job).where(Job.id.in_(tied)).values(created_at=SAME_INSTANT))
        s.execute(update(Job).where(Job.id.in_(older)).values(created_at=datetime(2025, 1, 1)))
        s.commit()
    pages = _pages(settings, limit=2)
    assert [i for p in pages for i in p] == [*sorted(tied, reverse=True), *older]


def test_the_default_page_is_twenty_jobs(settings):
    made = _jobs(settings, 21)
    with session_scope(settings) as s:
        items, cursor = list_jobs(s, "local")
    assert [j.id for j in items] == made[::-1][:20] and cursor is not None


def test_a_cursor_wins_over_an_offset(settings):
    made = _jobs(settings, 6)[::-1]  # newest first
    with session_scope(settings) as s:
        first, cursor = list_jobs(s, "local", limit=2)
        after, _ = list_jobs(s, "local", limit=2, cursor=cursor, offset=3)
        by_offset, _ = list_jobs(s, "local", limit=2, offset=3)
    assert [j.id for j in first] == made[:2]
    assert [j.id for j in after] == made[2:4]  # the page after the cursor, not 3 further on
    assert [j.id for j in by_offset] == made[3:5]
