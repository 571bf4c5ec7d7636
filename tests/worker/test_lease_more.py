"""The lease's heartbeat thread, stage watchdog and cancel polling, on an injected clock.

The thread really runs (with a 10 ms heartbeat) but time as the lease sees it is moved by
hand, so a hung stage or a lost lease happens exactly when the test says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.migrate import upgrade
from akd_service.db.session import session_scope
from tests.worker.conftest import SPEC
from worker import lease as lease_mod
from worker.lease import CANCEL_POLL_S, Lease

STAGE_TIMEOUT_S = 30.0


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Counted:
    """Wraps a jobs_db function, counting its calls (thread-safe enough for a counter)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    # Each wait is for a few 10 ms heartbeats: 10 s is ample on a loaded machine, and a
    # mutant that breaks the thread fails in 10 s instead of hanging `make mutation`.
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.01)


def _db_down(*_a: Any, **_kw: Any) -> Any:
    raise OperationalError("UPDATE jobs", {}, Exception("database is unreachable"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(data_dir=tmp_path / "data", heartbeat_s=0.01, stale_after_s=10.0,
                 stage_timeout_s=STAGE_TIMEOUT_S)  # fmt: skip
    s.ensure_dirs()
    upgrade(s)
    return s


@pytest.fixture
def job_id(settings: Settings) -> str:
    with session_scope(settings) as s:
        job_id = jobs_db.create_job(s, "local", SPEC, 3).id
        assert jobs_db.claim_job(s, job_id, "w1", settings.stale_after_s) is not None
    return job_id


@pytest.fixture
def beats(monkeypatch: pytest.MonkeyPatch) -> Counted:
    counted = Counted(jobs_db.heartbeat)
    monkeypatch.setattr(jobs_db, "heartbeat", counted)
    return counted


@pytest.fixture
def running(settings: Settings, job_id: str) -> Iterator[tuple[Lease, FakeClock, list[str]]]:
    """A started lease of w1 on the job, its clock, and the job states its hang hook saw."""
    clock, hooked = FakeClock(), []

    def on_hang() -> None:
        with session_scope(settings) as s:
            job = jobs_db.get_job(s, job_id)
            hooked.append(f"{job.state}:{job.failure_reason}")

    lease = Lease(settings, job_id, "w1", clock=clock, on_hang=on_hang)
    lease.start()
    try:
        yield lease, clock, hooked
    finally:
        lease.stop()


def _row(settings: Settings, job_id: str) -> Any:
    with session_scope(settings) as s:
        return jobs_db.get_job(s, job_id)


def test_the_thread_keeps_beating_until_stopped(running, beats):
    lease, _, hooked = running
    assert lease._thread.name == f"heartbeat-{lease.job_id[:8]}"
    assert lease._thread.daemon  # a stuck heartbeat never keeps a finished worker alive
    _until(lambda: beats.calls >= 3, "three heartbeats")
    lease.stop()
    assert not lease._thread.is_alive()
    after_stop = beats.calls
    time.sleep(0.1)
    assert beats.calls == after_stop and not lease.lost and hooked == []


def test_a_stage_without_progress_is_given_up_naming_the_stage(running, settings, beats, caplog):
    lease, clock, hooked = running
    _until(lambda: beats.calls >= 2, "two heartbeats")
    lease.progressed("exporting")
    clock.now += STAGE_TIMEOUT_S  # exactly the timeout: not hung yet
    seen = beats.calls
    _until(lambda: beats.calls >= seen + 3, "three more heartbeats")
    assert not lease.lost
    with caplog.at_level(logging.WARNING, logger=lease_mod.__name__):
        clock.now += 0.5
        _until(lambda: hooked != [], "the hang hook ran")
    reason = (
        "the exporting stage made no progress for 30 s (stage_timeout_s); the worker gave up on it"
    )
    # With attempts left the job stays running, stale at once, for another worker to resume.
    assert hooked == [f"running:{reason}"]
    assert lease.lost and lease.should_stop()
    _until(lambda: not lease._thread.is_alive(), "the heartbeat thread ended")
    job = _row(settings, lease.job_id)
    assert job.heartbeat_at is None and job.failure_reason == reason
    assert f"job {lease.job_id}: {reason} (job now running)" in caplog.messages
    assert f"job {lease.job_id}: lease lost by w1 ({reason}); stopping" in caplog.messages


def test_a_run_that_never_reported_hangs_in_the_starting_stage(running, settings, beats):
    lease, clock, hooked = running
    _until(lambda: beats.calls >= 1, "a heartbeat")
    clock.now += STAGE_TIMEOUT_S + 1
    _until(lambda: hooked != [], "the hang hook ran")
    assert "the starting stage made no progress" in hooked[0]


def test_each_stop_check_counts_as_progress(running, beats):
    lease, clock, hooked = running
    for _ in range(5):  # 5 x 8 s: past the 30 s timeout in all, never 30 s without a check
        clock.now += 8.0
        assert not lease.should_stop()
        seen = beats.calls
        _until(lambda seen=seen: beats.calls >= seen + 2, "two more heartbeats")
    assert hooked == [] and not lease.lost


def test_recording_a_hung_stage_may_fail_the_lease_still_stops(running, monkeypatch, caplog):
    lease, clock, hooked = running
    monkeypatch.setattr(jobs_db, "abandon_attempt", _db_down)
    with caplog.at_level(logging.WARNING, logger=lease_mod.__name__):
        clock.now += STAGE_TIMEOUT_S + 1
        _until(lambda: hooked != [], "the hang hook ran")
    warned = [
        r
        for r in caplog.records
        if r.getMessage() == f"job {lease.job_id}: recording the hung stage failed"
    ]
    assert len(warned) == 1 and warned[0].exc_info[0] is OperationalError
    assert any(m.endswith("(job now stale)") for m in caplog.messages)
    assert lease.lost


def test_a_lost_lease_stops_the_heartbeats(running, settings, beats):
    lease, _, hooked = running
    _until(lambda: beats.calls >= 1, "a heartbeat")
    with session_scope(settings) as s:
        jobs_db.finish_job(s, lease.job_id, "w1", "failed", "ended elsewhere")
    _until(lambda: lease.lost, "the lease was lost")
    seen = beats.calls
    time.sleep(0.1)
    assert beats.calls == seen and hooked == []


def test_cancel_is_read_from_the_database_at_most_every_poll_interval(
    settings, job_id, monkeypatch
):
    polls = Counted(jobs_db.is_cancel_requested)
    monkeypatch.setattr(jobs_db, "is_cancel_requested", polls)
    clock = FakeClock()
    lease = Lease(settings, job_id, "w1", clock=clock)
    assert lease.should_stop() is False and polls.calls == 1  # the first check reads at once
    with session_scope(settings) as s:
        jobs_db.request_cancel(s, job_id)
    clock.now += CANCEL_POLL_S - 0.01
    assert lease.should_stop() is False and polls.calls == 1  # too soon to read again
    clock.now += 0.01
    assert lease.should_stop() is True and polls.calls == 2
    assert lease.should_stop() is True and polls.calls == 2  # the answer is remembered


def test_a_failed_cancel_check_is_not_a_cancel(settings, job_id, monkeypatch, caplog):
    monkeypatch.setattr(jobs_db, "is_cancel_requested", _db_down)
    lease = Lease(settings, job_id, "w1", clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger=lease_mod.__name__):
        assert lease.should_stop() is False
    (record,) = caplog.records
    assert record.getMessage() == f"cancel check of job {job_id} failed"
    assert record.exc_info[0] is OperationalError


def test_a_lease_guarded_write_renews_like_a_heartbeat(settings, job_id, monkeypatch):
    clock = FakeClock()
    lease = Lease(settings, job_id, "w1", clock=clock)
    monkeypatch.setattr(jobs_db, "heartbeat", _db_down)
    clock.now += 9.0
    lease.refreshed()  # e.g. set_progress succeeded while heartbeats kept failing
    clock.now += 9.0  # 18 s since the last heartbeat, 9 s since the write: inside the fence
    assert not lease.should_stop()
    clock.now += 1.0
    assert lease.should_stop()


@pytest.mark.slow  # waits out the 5 s grace
def test_stop_gives_up_waiting_for_a_heartbeat_stuck_in_the_database(settings, job_id, monkeypatch):
    entered, release = threading.Event(), threading.Event()

    def stuck(*_a: Any, **_kw: Any) -> bool:
        entered.set()
        release.wait(60)
        return True

    monkeypatch.setattr(jobs_db, "heartbeat", stuck)
    lease = Lease(settings, job_id, "w1", clock=FakeClock()).start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        lease.stop()  # waits heartbeat_s + 5 s for the thread, then lets the run finish
        assert 5.0 <= time.monotonic() - started < 30.0
    finally:
        release.set()


def test_a_failed_heartbeat_keeps_the_lease_but_does_not_renew_it(
    settings, job_id, monkeypatch, caplog
):
    clock = FakeClock()
    lease = Lease(settings, job_id, "w1", clock=clock)
    monkeypatch.setattr(jobs_db, "heartbeat", _db_down)
    clock.now += 5.0
    with caplog.at_level(logging.WARNING, logger=lease_mod.__name__):
        assert lease.beat() is True and not lease.lost
    (record,) = caplog.records
    assert record.getMessage() == f"heartbeat of job {job_id} failed; will retry"
    assert record.exc_info[0] is OperationalError  # the database's own error, for the operator
    clock.now += 5.0  # 10 s since the last renewal: past the fence (9.99 s)
    assert lease.beat() is False and lease.lost


def test_a_taken_over_lease_logs_why_it_stops(settings, job_id, caplog):
    lease = Lease(settings, job_id, "w1", clock=FakeClock())
    with session_scope(settings) as s:
        jobs_db.finish_job(s, job_id, "w1", "failed", "ended elsewhere")
    with caplog.at_level(logging.WARNING, logger=lease_mod.__name__):
        assert lease.beat() is False
    assert caplog.messages == [
        f"job {job_id}: lease lost by w1 (another worker holds the lease or the job ended); "
        "stopping"
    ]


def test_the_fence_is_at_least_one_heartbeat(tmp_path):
    # stale_after_s under two heartbeats: stopping one heartbeat early would mean at once.
    s = Settings(data_dir=tmp_path / "d", heartbeat_s=2.0, stale_after_s=3.0)
    clock = FakeClock()
    lease = Lease(s, "job", "w1", clock=clock)
    clock.now += 2.0
    assert not lease.lost
    clock.now += 0.01
    assert lease.lost


def test_lost_is_logged_once_with_the_reason(settings, job_id, caplog):
    lease = Lease(settings, job_id, "w1", clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger=lease_mod.__name__):
        lease.mark_lost("taken over")
        lease.mark_lost("taken over again")
    assert caplog.messages == [f"job {job_id}: lease lost by w1 (taken over); stopping"]


def test_stop_without_start_returns_at_once(settings, job_id):
    lease = Lease(settings, job_id, "w1", clock=FakeClock())
    started = time.monotonic()
    lease.stop()
    assert time.monotonic() - started < 1.0 and threading.current_thread() is not lease._thread
