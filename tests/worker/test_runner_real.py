"""The runner with the real akd_core pipeline, in-process: outputs land where the API serves them."""

from __future__ import annotations

import json

import pytest

from akd_service.db import jobs as jobs_db
from akd_service.db.models import Upload
from akd_service.db.session import session_scope
from worker.runner import execute_job


@pytest.mark.slow
@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # the DB part is tested apart
def test_real_run_writes_the_contract_outputs(settings, make_job, digits_teacher):
    with session_scope(settings) as session:
        session.add(Upload(id="t1", owner="local", filename="teacher.onnx", size=1,
                           sha256="0" * 64, path=str(digits_teacher), kind="onnx"))  # fmt: skip
    spec = {
        "teacher": {"source": "upload:t1", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
    }
    job_id = make_job(spec)
    assert execute_job(job_id, "w1", settings=settings) == "succeeded"
    with session_scope(settings) as session:
        job = jobs_db.get_job(session, job_id)
        assert job is not None
        artifacts, metrics = job.artifacts, job.metrics
    assert {"student.onnx", "report.json", "report.md"} <= set(artifacts)
    assert "checkpoints" not in artifacts
    report = json.loads((settings.artifacts / job_id / "report.json").read_text())
    assert metrics["student_accuracy"] == report["student"]["accuracy"] > 0.5
    assert metrics["teacher_accuracy"] == report["teacher"]["accuracy"]
