"""The job row's compare-and-set lease: one runner at a time, takeover only when stale."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from akd_service.config import Settings
from akd_service.db import jobs as job_store
from akd_service.db.migrate import upgrade
from akd_service.db.models import utcnow
from akd_service.db.session import session_scope
from tests.db_support import backdate


def _job(settings, max_attempts: int = 3) -> str:
    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as s:
        return job_store.create_job(s, "local", {}, max_attempts).id


def _age_heartbeat(settings, job_id: str, seconds: float) -> None:
    backdate(settings, job_id, "heartbeat_at", seconds)


def test_two_concurrent_claims_only_one_wins(settings):
    job_id = _job(settings)
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def claim(worker: str) -> None:
        with session_scope(settings) as s:
            barrier.wait()
            results[worker] = job_store.claim_job(s, job_id, worker, 60)

    threads = [threading.Thread(target=claim, args=(w,)) for w in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [w for w, job in results.items() if job is not None]
    assert len(winners) == 1
    with session_scope(settings) as s:
        job = job_store.get_job(s, job_id)
        assert job.state == "running" and job.attempt == 1 and job.lease_owner == winners[0]


def test_a_fresh_lease_is_not_taken_over(settings):
    job_id = _job(settings)
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job_id, "w1", 60).attempt == 1
        assert job_store.claim_job(s, job_id, "w2", 60) is None
        assert job_store.heartbeat(s, job_id, "w1")
        assert not job_store.heartbeat(s, job_id, "w2")


def test_a_stale_job_is_taken_over_with_attempt_2_and_the_old_worker_loses_its_lease(settings):
    job_id = _job(settings)
    with session_scope(settings) as s:
        job_store.claim_job(s, job_id, "w1", 60)
    _age_heartbeat(settings, job_id, 120)
    with session_scope(settings) as s:
        assert job_store.stale_jobs(s, 60) == [job_id]
        job = job_store.claim_job(s, job_id, "w2", 60)
        assert job is not None and job.attempt == 2 and job.lease_owner == "w2"
        # The first worker, back from the dead, can no longer write anything.
        assert not job_store.heartbeat(s, job_id, "w1")
        assert not job_store.set_progress(s, job_id, "w1", phase="annealing", progress=0.5)
        assert not job_store.finish_job(s, job_id, "w1", "succeeded")
        assert job_store.finish_job(s, job_id, "w2", "succeeded", metrics={"acc": 0.9})
        assert job_store.get_job(s, job_id).state == "succeeded"
        assert job_store.claim_job(s, job_id, "w3", 0) is None


def test_a_stale_job_out_of_attempts_fails_with_a_reason(settings):
    job_id = _job(settings, max_attempts=1)
    with session_scope(settings) as s:
        job_store.claim_job(s, job_id, "w1", 60)
    _age_heartbeat(settings, job_id, 120)
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job_id, "w2", 60) is None
        job = job_store.get_job(s, job_id)
        assert job.state == "failed"
        assert "max_attempts=1" in job.failure_reason


def test_a_stale_cancelling_job_ends_cancelled_instead_of_rerunning(settings):
    job_id = _job(settings)
    with session_scope(settings) as s:
        job_store.claim_job(s, job_id, "w1", 60)
        assert job_store.request_cancel(s, job_id) == "cancelling"
    _age_heartbeat(settings, job_id, 120)
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job_id, "w2", 60) is None
        assert job_store.get_job(s, job_id).state == "cancelled"


def test_progress_is_recorded_and_refreshes_the_heartbeat(settings):
    job_id = _job(settings)
    with session_scope(settings) as s:
        job_store.claim_job(s, job_id, "w1", 60)
    _age_heartbeat(settings, job_id, 30)
    time.sleep(0.01)
    with session_scope(settings) as s:
        assert job_store.set_progress(s, job_id, "w1", phase="annealing", progress=1.7)
        job = job_store.get_job(s, job_id)
        assert job.phase == "annealing" and job.progress == 1.0
        assert utcnow() - job.heartbeat_at < timedelta(seconds=5)
        assert job_store.stale_jobs(s, 10) == []


# --- the database's clock, and PostgreSQL -----------------------------------------------------


def _skew_clock(monkeypatch, by: timedelta) -> None:
    """Make this process's idea of "now" wrong by `by` (a worker with a bad clock)."""
    skewed = lambda: utcnow() + by  # noqa: E731
    monkeypatch.setattr("akd_service.db.models.utcnow", skewed)
    monkeypatch.setattr("akd_service.db.jobs.utcnow", skewed, raising=False)


def test_a_worker_whose_clock_is_behind_keeps_its_lease_fresh(db_settings, monkeypatch):
    job_id = _job(db_settings)
    _skew_clock(monkeypatch, -timedelta(hours=1))
    with session_scope(db_settings) as s:
        assert job_store.claim_job(s, job_id, "w-slow-clock", 60) is not None
        assert job_store.heartbeat(s, job_id, "w-slow-clock")
    monkeypatch.undo()
    with session_scope(db_settings) as s:
        assert job_store.stale_jobs(s, 60) == []  # a live job, not one to take over
        assert job_store.claim_job(s, job_id, "w-other", 60) is None


def test_a_reaper_whose_clock_is_ahead_sees_no_stale_job(db_settings, monkeypatch):
    job_id = _job(db_settings)
    with session_scope(db_settings) as s:
        assert job_store.claim_job(s, job_id, "w1", 60) is not None
    _skew_clock(monkeypatch, timedelta(hours=1))
    with session_scope(db_settings) as s:
        assert job_store.stale_jobs(s, 60) == []
        assert job_store.claim_job(s, job_id, "w2", 60) is None


def test_concurrent_claims_each_job_has_exactly_one_winner(db_settings):
    # Many workers racing for the same jobs: the compare-and-set must never give one job
    # to two of them, on SQLite's database lock as on PostgreSQL's row locks.
    jobs = [_job(db_settings) for _ in range(12)]
    wins: dict[str, list[str]] = {j: [] for j in jobs}
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            barrier.wait()
            for job_id in jobs if name.endswith(("0", "2", "4")) else reversed(jobs):
                with session_scope(db_settings) as s:
                    if job_store.claim_job(s, job_id, name, 60) is not None:
                        wins[job_id].append(name)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert all(len(w) == 1 for w in wins.values()), wins
    with session_scope(db_settings) as s:
        for job_id, (winner,) in wins.items():
            job = job_store.get_job(s, job_id)
            assert job.lease_owner == winner and job.attempt == 1


def test_heartbeats_are_utc_whatever_the_database_sessions_time_zone(postgres_url, tmp_path):
    # A PostgreSQL server (or role) set to a local time zone must not shift heartbeats by hours.
    url = postgres_url + "&options=-c%20TimeZone%3DAmerica/New_York"
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    settings.ensure_dirs()
    upgrade(settings)
    job_id = _job(settings)
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job_id, "w1", 60) is not None
        assert job_store.heartbeat(s, job_id, "w1")
        beat = job_store.get_job(s, job_id).heartbeat_at
        assert abs(beat - utcnow()) < timedelta(minutes=1)
        assert job_store.stale_jobs(s, 60) == []
