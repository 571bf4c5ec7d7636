"""The reaper re-enqueues jobs whose worker died, once per staleness period."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from akd_service.db import jobs as jobs_db
from akd_service.db.models import Job, utcnow
from akd_service.db.session import session_scope
from tests.db_support import backdate
from tests.queue_support import RecordingQueue
from worker.reaper import Reaper, release_leases


def _running(settings, job_id: str, owner: str, age_s: float) -> None:
    with session_scope(settings) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="running", lease_owner=owner, attempt=1,
                    heartbeat_at=utcnow() - timedelta(seconds=age_s))
        )  # fmt: skip


def _age_resend(settings, job_id: str, age_s: float) -> None:
    """Pretend the reaper's last message for the job was sent age_s ago."""
    backdate(settings, job_id, "resent_at", age_s)


def _row(settings, job_id: str) -> Job:
    with session_scope(settings) as session:
        job = jobs_db.get_job(session, job_id)
        assert job is not None
        return job


def test_stale_jobs_are_enqueued_once_per_period(settings, make_job):
    dead, alive = make_job(), make_job()
    _running(settings, dead, "w-dead", age_s=settings.stale_after_s + 1)
    _running(settings, alive, "w-alive", age_s=0)
    sent: list[str] = []
    reaper = Reaper(settings, RecordingQueue(sent))
    assert reaper.reap_once() == [dead]
    assert reaper.reap_once() == []  # not again while the first message may still be pending
    _age_resend(settings, dead, settings.stale_after_s + 0.1)
    assert reaper.reap_once() == [dead]
    assert sent == [dead, dead]


def test_resends_back_off_and_stop_with_a_reason_after_the_cap(settings, make_job):
    # Nobody ever claims these: before, each got one message per stale_after_s forever.
    settings = settings.model_copy(update={"reaper_max_resends": 3})
    queued, stale = make_job(), make_job()
    _age(settings, queued, settings.stale_after_s + 1)
    _running(settings, stale, "w-dead", age_s=settings.stale_after_s + 1)
    sent: list[str] = []
    reaper = Reaper(settings, RecordingQueue(sent))
    period = settings.stale_after_s
    assert sorted(reaper.reap_once()) == sorted([queued, stale])  # re-send 1
    for job in (queued, stale):
        _age_resend(settings, job, period + 0.1)
    assert len(reaper.reap_once()) == 2  # re-send 2, one period after the first
    for job in (queued, stale):
        _age_resend(settings, job, period + 0.1)
    assert reaper.reap_once() == []  # the third waits two periods
    for job in (queued, stale):
        _age_resend(settings, job, 2 * period + 0.1)
    assert len(reaper.reap_once()) == 2  # re-send 3 = the cap
    for job in (queued, stale):
        _age_resend(settings, job, 4 * period + 0.1)
    assert reaper.reap_once() == []  # given up, not sent again
    assert len(sent) == 6
    for job in (queued, stale):
        row = _row(settings, job)
        assert row.state == "failed" and row.resends == 3
        assert "no worker took this job after 3 re-sent messages" in row.failure_reason
    _age_resend(settings, queued, 1e6)
    assert reaper.reap_once() == [] and len(sent) == 6


def test_a_claim_resets_the_resend_count(settings, make_job):
    job_id = make_job()
    _age(settings, job_id, settings.stale_after_s + 1)
    Reaper(settings, RecordingQueue()).reap_once()
    assert _row(settings, job_id).resends == 1
    with session_scope(settings) as session:
        assert jobs_db.claim_job(session, job_id, "w1", settings.stale_after_s) is not None
    row = _row(settings, job_id)
    assert row.resends == 0 and row.resent_at is None


def test_start_requeues_queued_and_stale_jobs_but_not_finished_ones(settings, make_job):
    queued, stale, done = make_job(), make_job(), make_job()
    _running(settings, stale, "w-dead", age_s=settings.stale_after_s + 1)
    with session_scope(settings) as session:
        assert jobs_db.request_cancel(session, done) == "cancelled"
    sent: list[str] = []
    Reaper(settings, RecordingQueue(sent)).requeue_unfinished()
    assert sorted(sent) == sorted([queued, stale])


def test_a_failing_broker_is_retried_next_pass(settings, make_job):
    job_id = make_job()
    reaper = Reaper(settings, RecordingQueue(failures=1))
    assert reaper.requeue_unfinished() == []
    assert reaper.requeue_unfinished() == [job_id]


def test_released_leases_are_claimable_at_once(settings, make_job):
    mine, theirs = make_job(), make_job()
    _running(settings, mine, "akd-serve-1234@host:1:aa", age_s=0)
    _running(settings, theirs, "other@host:2:bb", age_s=0)
    assert release_leases(settings, "akd-serve-1234@") == [mine]
    with session_scope(settings) as session:
        assert jobs_db.claim_job(session, mine, "next", settings.stale_after_s) is not None
        assert jobs_db.claim_job(session, theirs, "next", settings.stale_after_s) is None


def _age(settings, job_id: str, age_s: float) -> None:
    backdate(settings, job_id, "created_at", age_s)


def test_queued_jobs_whose_message_was_lost_are_resent_once_old(settings, make_job):
    # e.g. the broker was down at POST /jobs, or Redis lost the message: the row stays queued.
    lost, fresh = make_job(), make_job()
    _age(settings, lost, settings.stale_after_s + 1)
    sent: list[str] = []
    reaper = Reaper(settings, RecordingQueue(sent))
    assert reaper.reap_once() == [lost]  # a just-created job still has its first message
    assert reaper.reap_once() == []
    _age_resend(settings, lost, settings.stale_after_s + 0.1)
    _age(settings, fresh, settings.stale_after_s + 1)
    assert sorted(reaper.reap_once()) == sorted([lost, fresh])
    # A duplicate is harmless: only one claim of a queued job wins.
    with session_scope(settings) as session:
        assert jobs_db.claim_job(session, lost, "w1", settings.stale_after_s) is not None
        assert jobs_db.claim_job(session, lost, "w2", settings.stale_after_s) is None


def _finished(settings, job_id: str, days_ago: float, events: int) -> None:
    with session_scope(settings) as session:
        for i in range(events):
            jobs_db.add_event(session, job_id, "log", {"message": f"event {i}"})
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="succeeded", finished_at=utcnow() - timedelta(days=days_ago))
        )


def _event_count(settings, job_id: str) -> int:
    with session_scope(settings) as session:
        return len(jobs_db.events_after(session, job_id))


def test_events_of_long_finished_jobs_are_deleted_in_bounded_batches(
    settings, make_job, monkeypatch
):
    settings = settings.model_copy(update={"event_retention_days": 30})
    old, recent, running = make_job(), make_job(), make_job()
    _finished(settings, old, days_ago=31, events=6)
    _finished(settings, recent, days_ago=29, events=6)
    _running(settings, running, "w-alive", age_s=0)
    monkeypatch.setattr("worker.reaper.PURGE_BATCH", 2)
    monkeypatch.setattr("worker.reaper.PURGE_BATCHES_PER_PASS", 2)
    reaper = Reaper(settings, RecordingQueue())
    assert reaper.purge_events() == 4  # two batches of two per pass, no more
    assert _event_count(settings, old) == 3  # 1 "queued" + 6 logs - 4
    reaper.reap_once()
    assert _event_count(settings, old) == 0
    assert _event_count(settings, recent) == 7  # younger than the retention period
    assert _event_count(settings, running) == 1  # a live job keeps its events
    with session_scope(settings) as session:  # the job itself stays, only its events go
        assert jobs_db.get_job(session, old).state == "succeeded"


def test_a_retention_of_zero_keeps_events_forever(settings, make_job):
    settings = settings.model_copy(update={"event_retention_days": 0})
    job_id = make_job()
    _finished(settings, job_id, days_ago=3650, events=2)
    assert Reaper(settings, RecordingQueue()).purge_events() == 0
    assert _event_count(settings, job_id) == 3
