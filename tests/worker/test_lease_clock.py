"""The lease fence on an injected clock: a worker that cannot renew stops before a takeover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.migrate import upgrade
from akd_service.db.models import Job
from akd_service.db.session import session_scope
from tests.worker.conftest import SPEC
from worker.lease import Lease

HEARTBEAT_S, STALE_AFTER_S = 1.0, 10.0  # another worker may claim after 10 s without a beat


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def leased(tmp_path: Path) -> tuple[Lease, FakeClock, Settings]:
    """A job claimed by worker w1 and w1's lease on it, driven by a fake clock (no thread)."""
    settings = Settings(data_dir=tmp_path / "data", heartbeat_s=HEARTBEAT_S,
                        stale_after_s=STALE_AFTER_S)  # fmt: skip
    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as s:
        job_id = jobs_db.create_job(s, "local", SPEC, 3).id
        assert jobs_db.claim_job(s, job_id, "w1", STALE_AFTER_S) is not None
    clock = FakeClock()
    return Lease(settings, job_id, "w1", clock=clock), clock, settings


def _database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_kw: Any) -> bool:
        raise OperationalError("UPDATE jobs", {}, Exception("database is unreachable"))

    monkeypatch.setattr(jobs_db, "heartbeat", refuse)


def _first_stop(lease: Lease, clock: FakeClock, start: float, step: float = 0.05) -> float:
    """Seconds after `start` at which the run's stop check first says stop (beating each step)."""
    while clock.now - start < 3 * STALE_AFTER_S:
        clock.now += step
        lease.beat()
        if lease.should_stop():
            return clock.now - start
    pytest.fail("the lease never stopped the run while its heartbeat kept failing")


def test_a_worker_that_cannot_renew_stops_before_another_may_claim(leased, monkeypatch):
    lease, clock, _ = leased
    start = clock.now
    assert lease.beat() and not lease.should_stop()
    _database_down(monkeypatch)
    stopped_after = _first_stop(lease, clock, start)
    # One heartbeat before the takeover threshold: never later (two runs would overlap), and
    # not much earlier (a short database hiccup must not kill a healthy run).
    assert STALE_AFTER_S - HEARTBEAT_S - 0.1 <= stopped_after < STALE_AFTER_S
    assert lease.lost
    clock.now += 100  # and it stays stopped, even if the database comes back
    monkeypatch.undo()
    assert lease.should_stop()


def test_a_renewed_lease_keeps_running_past_the_fence(leased, monkeypatch):
    lease, clock, _ = leased
    _database_down(monkeypatch)
    clock.now += STALE_AFTER_S - HEARTBEAT_S - 1  # a long outage, but inside the fence
    assert lease.beat() and not lease.should_stop()  # a failed beat is not a lost lease
    monkeypatch.undo()
    assert lease.beat()  # renewed: the fence counts from here
    clock.now += STALE_AFTER_S - HEARTBEAT_S - 1
    assert not lease.should_stop()
    clock.now += 2
    assert lease.should_stop()  # no renewal since: it stops again, one heartbeat early


def test_a_lease_taken_over_stops_the_run_at_the_next_beat(leased):
    lease, clock, settings = leased
    with session_scope(settings) as s:  # another worker holds the job now
        s.execute(update(Job).where(Job.id == lease.job_id).values(lease_owner="w2"))
        s.commit()
    clock.now += HEARTBEAT_S
    assert lease.beat() is False
    assert lease.should_stop()
