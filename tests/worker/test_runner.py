"""The job task logic, run in-process against a real SQLite database with a fake core run."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from akd_core.errors import DatasetError, JobCancelled, SpecError
from akd_core.events import ProgressEvent
from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.models import Job, Upload, utcnow
from akd_service.db.session import session_scope
from worker.runner import artifact_names, execute_job, upload_resolver

# A stored spec that lacks the student (e.g. written by an older server version).
SPEC_BAD = {
    "teacher": {"source": "upload:x", "format": "onnx"},
    "dataset": {"source": "builtin:digits"},
}


def job_row(settings: Settings, job_id: str) -> Job:
    with session_scope(settings) as session:
        job = jobs_db.get_job(session, job_id)
        assert job is not None
        return job


def events(settings: Settings, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    with session_scope(settings) as session:
        return [(e.kind, e.data) for e in jobs_db.events_after(session, job_id)]


def _arm(accuracy: float) -> dict[str, Any]:
    history = [{"phase": 1, "epoch": 1, "T": 2.0, "phi": 0.5, "train_loss": 1.2,
                "val_accuracy": accuracy, "lr": 0.01, "seconds": 0.1}]  # fmt: skip
    return {"accuracy": accuracy, "val_accuracy": accuracy, "best_phase": 1, "best_epoch": 1,
            "train_seconds": 0.1, "history": history}  # fmt: skip


def fake_report() -> dict[str, Any]:
    """A small report.json that follows docs/report.schema.json (what run_job returns)."""
    return {
        "akd_version": "0.1.0", "method": "annealing", "spec": {}, "preprocessing": None,
        "dataset": {"source": "builtin:digits", "kind": "image", "input_shape": [1, 8, 8],
                    "num_classes": 10, "classes": [str(i) for i in range(10)],
                    "sizes": {"train": 8, "val": 2, "test": 2}, "fingerprint": "d" * 64},
        "teacher": {"format": "onnx", "fingerprint": "t" * 64, "params": 1000,
                    "size_bytes": 4000, "accuracy": 0.97, "val_accuracy": 0.96},
        "student": {"arch": "mlp", "params": 100, **_arm(0.93)},
        "baselines": {"student": _arm(0.9)},
        "params": {"teacher": 1000, "student": 100},
        "compression": 10.0,
        "onnx": {"file": "student.onnx", "opset": 17, "size_bytes": 400,
                 "parity_max_abs_diff": 1e-6, "argmax_agreement": 1.0, "accuracy": 0.93,
                 "latency_ms_batch1": 0.05},
        "int8": None,
        "history": _arm(0.93)["history"],
        "device": "cpu", "mixed_precision": None,
        "timings": {"teacher_cache_s": 0.1, "teacher_cache_hit": False,
                    "train_s": {"annealing": 0.1, "student": 0.1}},
    }  # fmt: skip


class FakeRun:
    """Stands in for akd_core.pipeline.run_job: emits events, writes outputs, obeys cancel."""

    def __init__(self, steps: int = 3, fail: Exception | None = None, step_s: float = 0.0,
                 during: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self.steps, self.fail, self.step_s, self.during = steps, fail, step_s, during
        self.calls: list[dict[str, Any]] = []

    def __call__(self, spec: Any, out_dir: Path, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw | {"out_dir": out_dir})
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "checkpoints").mkdir(exist_ok=True)
        (out_dir / "checkpoints" / "arm.pt").write_bytes(b"state")
        for step in range(self.steps):
            if self.during is not None:
                self.during(step)
            if kw["should_cancel"]():
                raise JobCancelled("the job was cancelled")
            kw["on_event"](ProgressEvent("epoch", "annealing", epoch=step + 1,
                                         progress=(step + 1) / (self.steps + 1)))  # fmt: skip
            time.sleep(self.step_s)
        if self.fail is not None:
            raise self.fail
        for name in ("student.onnx", "report.json", "report.md"):
            (out_dir / name).write_text("x")
        (out_dir / ".student.onnx.tmp123").write_text("half")
        return fake_report()


def test_successful_job_records_metrics_artifacts_and_events(settings, make_job):
    job_id = make_job()
    run = FakeRun()
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "succeeded"

    job = job_row(settings, job_id)
    assert job.state == "succeeded" and job.progress == 1.0 and job.attempt == 1
    assert job.metrics["student_accuracy"] == 0.93
    assert job.metrics["baselines"] == {"student": 0.9}
    # Resume state and half-written temporaries are never offered for download.
    assert job.artifacts == ["report.json", "report.md", "student.onnx"]
    assert run.calls[0]["resume"] is False
    assert run.calls[0]["out_dir"] == settings.artifacts / job_id
    kinds = events(settings, job_id)
    assert [d["epoch"] for k, d in kinds if k == "epoch"] == [1, 2, 3]
    assert all(d["attempt"] == 1 for k, d in kinds if k == "epoch")
    assert kinds[-1] == ("state", {"state": "succeeded"})


def test_user_error_fails_with_the_core_message(settings, make_job):
    job_id = make_job()
    err = DatasetError("train.npz has no array named 'y'", field="dataset.source")
    assert execute_job(job_id, "w1", settings=settings, run_job=FakeRun(fail=err)) == "failed"
    job = job_row(settings, job_id)
    assert job.failure_reason == "dataset.source: train.npz has no array named 'y'"
    assert job.artifacts == []


def test_unexpected_exception_is_an_internal_error_not_a_crash(settings, make_job):
    job_id = make_job()
    run = FakeRun(fail=ZeroDivisionError("division by zero"))
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "failed"
    assert job_row(settings, job_id).failure_reason == (
        "internal error: ZeroDivisionError: division by zero"
    )


def test_invalid_stored_spec_fails_with_the_field(settings, make_job):
    job_id = make_job(SPEC_BAD)
    assert execute_job(job_id, "w1", settings=settings, run_job=FakeRun()) == "failed"
    assert "student" in (job_row(settings, job_id).failure_reason or "")


def test_cancel_flag_stops_a_running_job(settings, make_job):
    job_id = make_job()

    def cancel_at(step: int) -> None:
        if step == 1:
            with session_scope(settings) as session:
                assert jobs_db.request_cancel(session, job_id) == "cancelling"
            time.sleep(0.6)  # past the cancel-poll throttle

    run = FakeRun(steps=50, during=cancel_at)
    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "cancelled"
    assert job_row(settings, job_id).state == "cancelled"
    assert len([k for k, _ in events(settings, job_id) if k == "epoch"]) < 5


def test_duplicate_delivery_of_a_live_job_is_dropped(settings, make_job):
    job_id = make_job()
    with session_scope(settings) as session:
        assert jobs_db.claim_job(session, job_id, "other", settings.stale_after_s) is not None
    run = FakeRun()
    assert execute_job(job_id, "w2", settings=settings, run_job=run) is None
    assert run.calls == []
    job = job_row(settings, job_id)
    assert (job.state, job.lease_owner, job.attempt) == ("running", "other", 1)


def _make_stale(settings: Settings, job_id: str, owner: str, attempt: int) -> None:
    with session_scope(settings) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(
                state="running", lease_owner=owner, attempt=attempt,
                heartbeat_at=utcnow() - timedelta(seconds=settings.stale_after_s + 5),
            )
        )  # fmt: skip


def test_job_of_a_dead_worker_resumes_from_its_checkpoint(settings, make_job):
    job_id = make_job()
    _make_stale(settings, job_id, "dead-worker", attempt=1)
    run = FakeRun()
    assert execute_job(job_id, "w2", settings=settings, run_job=run) == "succeeded"
    assert run.calls[0]["resume"] is True
    job = job_row(settings, job_id)
    assert (job.attempt, job.lease_owner) == (2, "w2")


def test_job_out_of_attempts_fails_with_a_reason(settings, make_job):
    job_id = make_job(max_attempts=2)
    _make_stale(settings, job_id, "dead-worker", attempt=2)
    run = FakeRun()
    assert execute_job(job_id, "w3", settings=settings, run_job=run) is None
    assert run.calls == []
    job = job_row(settings, job_id)
    assert job.state == "failed"
    assert "2 attempts" in (job.failure_reason or "")


def test_lost_lease_stops_the_run_without_writing_an_outcome(settings, make_job):
    job_id = make_job()

    def steal(step: int) -> None:
        if step == 1:  # another worker took over (as if our heartbeats had gone stale)
            with session_scope(settings) as session:
                session.execute(update(Job).where(Job.id == job_id).values(lease_owner="thief"))
            time.sleep(3 * settings.heartbeat_s)

    run = FakeRun(steps=100, step_s=0.01, during=steal)
    assert execute_job(job_id, "w1", settings=settings, run_job=run) is None
    job = job_row(settings, job_id)
    assert (job.state, job.lease_owner) == ("running", "thief")
    assert not any(d.get("state") in ("succeeded", "failed", "cancelled")
                   for _, d in events(settings, job_id))  # fmt: skip


def test_upload_resolver_only_resolves_the_owners_files(settings):
    stored = settings.uploads / "u1" / "teacher.onnx"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"onnx")
    with session_scope(settings) as session:
        session.add(Upload(id="u1", owner="alice", filename="teacher.onnx", size=4,
                           sha256="0" * 64, path=str(stored), kind="onnx"))  # fmt: skip
    assert upload_resolver(settings, "alice")("upload:u1") == stored
    with pytest.raises(SpecError, match="does not exist"):
        upload_resolver(settings, "bob")("upload:u1")
    with pytest.raises(SpecError, match="does not exist"):
        upload_resolver(settings, "alice")("upload:nope")


def test_artifact_names_skip_checkpoints_and_temporaries(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for name in ("student.onnx", "loss.png", ".tmp-x", "report.json.part"):
        (tmp_path / name).write_text("x")
    assert artifact_names(tmp_path) == ["loss.png", "student.onnx"]
    assert artifact_names(tmp_path / "missing") == []


def test_upload_resolver_reads_rows_relative_to_a_relative_uploads_root(tmp_path, monkeypatch):
    # The default AKD_DATA_DIR is relative; rows hold "<id>/<name>" under the uploads root.
    from akd_service.db.migrate import upgrade

    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path("akd-data"))
    settings.ensure_dirs()
    upgrade(settings)
    stored = settings.uploads / "u1" / "teacher.onnx"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"onnx")
    with session_scope(settings) as session:
        session.add(Upload(id="u1", owner="alice", filename="teacher.onnx", size=4,
                           sha256="0" * 64, path="u1/teacher.onnx", kind="onnx"))  # fmt: skip
    resolved = upload_resolver(settings, "alice")("upload:u1")
    assert resolved.read_bytes() == b"onnx"
    assert resolved.resolve() == (tmp_path / "akd-data" / "uploads" / "u1" / "teacher.onnx")


def test_metrics_are_read_from_the_report_model(settings, make_job):
    from tests.report_contract import contract_errors

    assert contract_errors(fake_report()) == []  # the stand-in follows the published schema
    job_id = make_job()
    assert execute_job(job_id, "w1", settings=settings, run_job=FakeRun()) == "succeeded"
    assert job_row(settings, job_id).metrics == {
        "teacher_accuracy": 0.97,
        "student_accuracy": 0.93,
        "params": {"teacher": 1000, "student": 100},
        "onnx_parity_max_abs_diff": 1e-6,
        "onnx_argmax_agreement": 1.0,
        "baselines": {"student": 0.9},
    }


def test_a_report_that_breaks_its_schema_fails_the_job_naming_the_field(settings, make_job):
    class BrokenReport(FakeRun):
        def __call__(self, spec: Any, out_dir: Path, **kw: Any) -> dict[str, Any]:
            report = super().__call__(spec, out_dir, **kw)
            del report["student"]["accuracy"]
            return report

    job_id = make_job()
    assert execute_job(job_id, "w1", settings=settings, run_job=BrokenReport()) == "failed"
    reason = job_row(settings, job_id).failure_reason
    assert "report.json" in reason and "student.accuracy" in reason
    assert str(settings.data_dir) not in reason
