"""How a run's end is recorded: cancel beats success, hung stages, no server paths."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from akd_core.errors import DatasetError
from akd_core.events import ProgressEvent
from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.session import session_scope
from akd_service.db.states import FINAL_STATES
from tests.worker.test_runner import FakeRun, events, job_row
from worker.runner import execute_job
from worker.scrub import scrub_paths


def _request_cancel(settings: Settings, job_id: str) -> str | None:
    with session_scope(settings) as session:
        return jobs_db.request_cancel(session, job_id)


class CancelledTooLate(FakeRun):
    """Finishes its work; the user's cancel lands after the run's last stop check."""

    def __init__(self, settings: Settings, job_id: str, answers: list[str | None]) -> None:
        super().__init__(steps=2)
        self.settings, self.job_id, self.answers = settings, job_id, answers

    def __call__(self, spec: Any, out_dir: Path, **kw: Any) -> dict[str, Any]:
        report = super().__call__(spec, out_dir, **kw)
        for _ in range(3):  # the audit's case: three 202 "cancelling" answers
            self.answers.append(_request_cancel(self.settings, self.job_id))
        return report


def test_a_job_told_cancelling_never_ends_succeeded(settings, make_job):
    job_id = make_job()
    answers: list[str | None] = []
    run = CancelledTooLate(settings, job_id, answers)
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "cancelled"
    assert answers == ["cancelling"] * 3
    job = job_row(settings, job_id)
    assert job.state == "cancelled"
    assert job.artifacts == []  # the files of the finished run are not offered
    assert [d["state"] for k, d in events(settings, job_id) if k == "state"][-1] == "cancelled"


def test_a_cancel_after_success_changes_nothing(settings, make_job):
    job_id = make_job()
    assert execute_job(job_id, "w1", settings=settings, run_job=FakeRun()) == "succeeded"
    assert _request_cancel(settings, job_id) is None  # the API answers 409: already final
    assert job_row(settings, job_id).state == "succeeded"


class HangsIn(FakeRun):
    """Announces a stage, then blocks (no events, no stop checks) until released."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage, self.release = stage, threading.Event()

    def __call__(self, spec: Any, out_dir: Path, **kw: Any) -> dict[str, Any]:
        kw["on_event"](ProgressEvent("phase", self.stage, progress=0.03))
        self.release.wait(60)  # like a teacher load stuck on a dead network share
        return super().__call__(spec, out_dir, **kw)


def _run_hung(settings: Settings, job_id: str, run: HangsIn, until: Any) -> tuple[Any, list[Any]]:
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(execute_job(job_id, "w1", settings=settings, run_job=run))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not until(job_row(settings, job_id)):
            time.sleep(0.1)
        return job_row(settings, job_id), result
    finally:
        run.release.set()
        worker.join(30)


def test_a_hung_stage_fails_the_last_attempt_naming_the_stage(settings, make_job):
    settings = settings.model_copy(update={"stage_timeout_s": 0.5})
    job_id = make_job(max_attempts=1)
    job, result = _run_hung(
        settings, job_id, HangsIn("caching_teacher"), lambda j: j.state in FINAL_STATES
    )
    assert job.state == "failed"
    assert "caching_teacher stage made no progress for 0.5 s" in job.failure_reason
    assert result == [None]  # the run that came back late wrote nothing over it
    assert job_row(settings, job_id).state == "failed"


def test_a_hung_stage_with_attempts_left_is_handed_to_another_worker(settings, make_job):
    settings = settings.model_copy(update={"stage_timeout_s": 0.5})
    job_id = make_job(max_attempts=3)
    job, _ = _run_hung(
        settings, job_id, HangsIn("exporting"), lambda j: j.failure_reason is not None
    )
    assert job.state == "running" and job.heartbeat_at is None
    assert "exporting stage made no progress" in job.failure_reason
    with session_scope(settings) as session:
        assert jobs_db.stale_jobs(session, settings.stale_after_s) == [job_id]  # no wait
    assert execute_job(job_id, "w2", settings=settings, run_job=FakeRun()) == "succeeded"
    job = job_row(settings, job_id)
    assert job.attempt == 2 and job.failure_reason is None


def test_a_slow_stage_that_reports_progress_is_not_hung(settings, make_job):
    # The stage runs 2.4 s in all, past the 1.5 s timeout, but never goes 0.2 s without an
    # event: a margin wide enough for a slow database write on a loaded CI machine (a 0.5 s
    # timeout against 0.2 s gaps once failed there).
    settings = settings.model_copy(update={"stage_timeout_s": 1.5})
    job_id = make_job(max_attempts=1)
    run = FakeRun(steps=12, step_s=0.2)
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "succeeded"


def test_failure_reasons_name_the_upload_not_the_server_path(settings, make_job):
    upload = settings.uploads / "9f8e7d6c" / "data.zip"
    job_id = make_job()
    run = FakeRun(fail=DatasetError(f"{upload} is not a zip archive (bad magic)"))
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "failed"
    reason = job_row(settings, job_id).failure_reason
    assert reason == "upload:9f8e7d6c is not a zip archive (bad magic)"
    state_events = [d for k, d in events(settings, job_id) if k == "state"]
    assert str(settings.data_dir) not in str(state_events)


def test_internal_errors_show_artifact_names_not_paths(settings, make_job):
    job_id = make_job()
    where = settings.artifacts / job_id / "student.onnx"
    run = FakeRun(fail=OSError(f"[Errno 28] No space left on device: '{where}'"))
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "failed"
    reason = job_row(settings, job_id).failure_reason
    assert reason == "internal error: OSError: [Errno 28] No space left on device: 'student.onnx'"


def test_scrub_covers_relative_and_resolved_roots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings(data_dir=Path("akd-data"))
    absolute = (tmp_path / "akd-data").resolve()
    msg = (
        f"{absolute}/uploads/abc/t.onnx; akd-data/uploads/def/x.npz; "
        f"{absolute}/cache/logits/1.npy; {absolute}/akd.db"
    )
    assert scrub_paths(msg, s) == "upload:abc; upload:def; <cache>/logits/1.npy; <data>/akd.db"


def test_the_hang_hook_runs_after_the_stage_was_recorded(settings, make_job):
    # In a Celery pool process the hook ends the process (tasks._end_hung_process): the hung
    # call cannot be interrupted, and the row must already say why before it goes.
    settings = settings.model_copy(update={"stage_timeout_s": 0.5})
    job_id = make_job(max_attempts=1)
    seen: list[str] = []
    run = HangsIn("loading")
    worker = threading.Thread(target=execute_job, args=(job_id, "w1"),
                              kwargs={"settings": settings, "run_job": run,
                                      "on_hang": lambda: seen.append(job_row(settings, job_id).state)})  # fmt: skip
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        run.release.set()
        worker.join(30)
    assert seen == ["failed"]
