"""POST /jobs: every invalid spec is a 422 naming the field, and creates nothing."""

from __future__ import annotations

from typing import Any

import pytest
from app_support import (
    assert_problem,
    digits_onnx_bytes,
    npz_bytes,
    onnx_bytes,
    pickle_bytes,
    spec_for,
    upload_id,
)
from sqlalchemy import func, select

from akd_service.db.models import Job
from akd_service.db.session import session_scope


def _job_count(settings) -> int:
    with session_scope(settings) as s:
        return int(s.execute(select(func.count()).select_from(Job)).scalar_one())


@pytest.fixture
def ids(client) -> dict[str, str]:
    return {
        "onnx": upload_id(client, "teacher.onnx", onnx_bytes()),  # fits data.npz
        "digits": upload_id(client, "digits.onnx", digits_onnx_bytes()),  # fits builtin:digits
        "npz": upload_id(client, "data.npz", npz_bytes()),
        "pickle": upload_id(client, "teacher.pt", pickle_bytes()),
        "csv": upload_id(client, "table.csv", b"a,b,label\n1,2,0\n3,4,1\n"),
    }


def test_valid_spec_is_accepted_with_location_and_enqueued(client, ids, enqueued, settings):
    r = client.post("/jobs", json=spec_for(ids["onnx"], ids["npz"]))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert job["state"] == "queued" and job["attempt"] == 0
    assert enqueued == [job["id"]]
    # The stored spec records the formats that were checked against the bytes.
    assert job["spec"]["dataset"]["format"] == "npz"
    assert job["links"]["events"] == f"/jobs/{job['id']}/events"
    assert client.get(f"/jobs/{job['id']}").json()["id"] == job["id"]


def _bad_specs(ids: dict[str, str]) -> list[tuple[dict[str, Any], str, str]]:
    base = spec_for(ids["onnx"], ids["npz"])
    return [
        ({**base, "colour": "blue"}, "colour", "unknown field"),
        ({**base, "annealing": {"tau_max": 4, "phase1_epochs": 10}}, "annealing", "multiple"),
        ({**base, "student": {"arch": "resnet9000"}}, "student.arch", "resnet8"),
        (
            {**base, "student": {"arch": "mlp", "options": {"depth": 3}}},
            "student.options",
            "accepted options: hidden",
        ),
        (
            {**base, "teacher": {"source": "upload:doesnotexist", "format": "onnx"}},
            "teacher.source",
            "POST /uploads",
        ),
        ({**base, "dataset": {"source": "upload:nope"}}, "dataset.source", "no upload"),
        (
            {**base, "teacher": {"source": "file:/etc/passwd", "format": "onnx"}},
            "teacher.source",
            "file: sources are for the CLI",
        ),
        (
            {**base, "teacher": {"source": f"upload:{ids['pickle']}", "format": "torchscript"}},
            "teacher.format",
            "pickle",
        ),
        (
            {**base, "teacher": {"source": f"upload:{ids['npz']}", "format": "onnx"}},
            "teacher.format",
            "onnx",
        ),
        (
            {**base, "dataset": {"source": f"upload:{ids['csv']}", "format": "npz"}},
            "dataset.format",
            "csv",
        ),
        ({**base, "teacher": {"source": "ftp://x"}}, "teacher.source", "not a valid source"),
        # Checked here rather than failing later in the worker:
        ({**base, "dataset": {"source": "builtin:mnist"}}, "dataset.source", "digits"),
        (
            {**base, "teacher": {"source": "builtin:digits", "format": "onnx"}},
            "teacher.source",
            "upload:<id>",
        ),
    ]


def test_invalid_specs_are_422_naming_the_field_and_create_nothing(client, ids, enqueued, settings):
    for spec, field, words in _bad_specs(ids):
        r = client.post("/jobs", json=spec)
        body = assert_problem(r, 422, field=field)
        assert words in body["detail"], (field, body["detail"])
    assert _job_count(settings) == 0
    assert enqueued == []


def test_a_known_builtin_dataset_is_accepted(client, ids, enqueued):
    spec = {**spec_for(ids["digits"], ids["npz"]), "dataset": {"source": "builtin:digits"}}
    r = client.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    assert enqueued == [r.json()["id"]]


def test_checking_a_builtin_source_keeps_torch_out_of_the_api(tmp_path):
    # The builtin names come from akd_core.data.builtin: that import must stay torch-free.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from app.api.checks import check_builtin_dataset\n"
        "check_builtin_dataset('builtin:digits')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_non_json_and_non_object_bodies_are_422(client, settings):
    json_type = {"Content-Type": "application/json"}  # other types are 415 (test_keys_off_mode)
    assert_problem(client.post("/jobs", content=b"{not json", headers=json_type), 422, field="spec")
    assert_problem(client.post("/jobs", json=[1, 2]), 422, field="spec")
    assert _job_count(settings) == 0


def test_a_broker_outage_keeps_the_job_queued(client, ids, queue, settings):
    queue.failures = 1
    r = client.post("/jobs", json=spec_for(ids["onnx"], ids["npz"]))
    assert r.status_code == 202
    assert client.get(f"/jobs/{r.json()['id']}").json()["state"] == "queued"
    assert queue.sent == [] and _job_count(settings) == 1
