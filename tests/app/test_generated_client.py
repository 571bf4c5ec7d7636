"""A client generated from /openapi.json with openapi-python-client reads well and works:
calls named as a person would, problem bodies parsed, job metrics typed."""

from __future__ import annotations

import importlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from app_support import LOCAL_URL, npz_bytes, onnx_bytes, spec_for

from akd_service.db import jobs as job_store
from akd_service.db.session import session_scope

# Stated here on purpose, not imported from app.api.openapi.OPERATION_IDS: generated clients
# name their calls after these, so renaming one in the app must fail this test.
EXPECTED_IDS = {
    ("post", "/uploads"): "upload_file",
    ("post", "/jobs"): "create_job",
    ("get", "/jobs"): "list_jobs",
    ("get", "/jobs/{job_id}"): "get_job",
    ("post", "/jobs/{job_id}/cancel"): "cancel_job",
    ("get", "/jobs/{job_id}/events"): "stream_events",
    ("get", "/jobs/{job_id}/artifacts/{name}"): "get_artifact",
}


def test_operation_ids_are_the_names_a_person_would_choose(client):
    doc = client.get("/openapi.json").json()
    ids = {(m, p): op["operationId"] for p, item in doc["paths"].items() for m, op in item.items()}
    assert {k: ids.get(k) for k in EXPECTED_IDS} == EXPECTED_IDS
    assert len(set(ids.values())) == len(ids)  # unique, as OpenAPI requires
    assert not [i for i in ids.values() if i.endswith(("_get", "_post"))]
    spec_schema = doc["paths"]["/schema/job-spec"]["get"]["responses"]["200"]
    assert spec_schema["content"]["application/json"]["schema"]["title"] == (
        "get_job_spec_schema_response"
    )


def _generator() -> str:
    found = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    if found is None:
        reason = "openapi-python-client is not installed (pip install -e '.[dev]')"
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return found


@pytest.fixture
def generated(client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The package openapi-python-client generates from this app's /openapi.json."""
    (tmp_path / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    package = tmp_path / "akd_generated_client"
    proc = subprocess.run(
        [_generator(), "generate", "--path", "openapi.json", "--output-path", str(package),
         "--meta", "none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert package.is_dir(), proc.stdout + proc.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("akd_generated_client")]:
        del sys.modules[name]
    return importlib.import_module("akd_generated_client")


def _api(generated: Any, module: str) -> Any:
    return importlib.import_module(f"akd_generated_client.api.{module}")


def test_a_generated_client_runs_a_job_with_typed_metrics_and_parsed_problems(
    generated, client, settings
):
    models = importlib.import_module("akd_generated_client.models")
    types = importlib.import_module("akd_generated_client.types")
    api = generated.Client(base_url=LOCAL_URL).set_httpx_client(client)

    def upload(name: str, data: bytes) -> str:
        body = models.UploadFileBody(file=types.File(payload=io.BytesIO(data), file_name=name))
        result = _api(generated, "uploads.upload_file").sync(client=api, body=body)
        assert isinstance(result, models.UploadPublic), result
        return str(result.id)

    spec = models.JobSpec.from_dict(
        spec_for(upload("t.onnx", onnx_bytes()), upload("d.npz", npz_bytes()))
    )
    job = _api(generated, "jobs.create_job").sync(client=api, body=spec)
    assert isinstance(job, models.JobPublic), job
    assert job.state == models.JobPublicState.QUEUED

    # The worker's part, recorded as runner.py records it: claim, then finish with metrics.
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job.id, "w1", 60) is not None
        metrics = {"teacher_accuracy": 0.99, "student_accuracy": 0.9731, "baselines": {"kd": 0.96},
                   "params": {"teacher": 290000, "student": 12000},
                   "onnx_parity_max_abs_diff": 1e-6, "onnx_argmax_agreement": 1.0}  # fmt: skip
        job_store.finish_job(s, job.id, "w1", "succeeded", metrics=metrics, artifacts=[])

    done = _api(generated, "jobs.get_job").sync(client=api, job_id=job.id)
    assert isinstance(done, models.JobPublic), done
    assert isinstance(done.metrics, models.JobMetrics)
    assert done.metrics.student_accuracy == pytest.approx(0.9731)
    assert done.metrics.params.student == 12000
    assert done.metrics.baselines["kd"] == pytest.approx(0.96)

    page = _api(generated, "jobs.list_jobs").sync(client=api)
    assert [j.id for j in page.items] == [job.id]

    refused = _api(generated, "jobs.cancel_job").sync(client=api, job_id=job.id)
    assert isinstance(refused, models.Problem), refused
    assert refused.status == 409 and "already ended" in refused.detail
    missing = _api(generated, "jobs.get_job").sync(client=api, job_id="0" * 32)
    assert isinstance(missing, models.Problem) and missing.status == 404
