"""POST /jobs refuses specs past the server's limits with a 422 naming the field and the limit."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_support import (
    assert_problem,
    make_settings,
    npz_bytes,
    onnx_bytes,
    onnx_classifier_bytes,
    spec_for,
    upload_id,
)
from fastapi.testclient import TestClient

from akd_core.models.names import student_params
from app.main import create_app


@pytest.fixture
def ids(client) -> dict[str, str]:
    return {
        "onnx": upload_id(client, "teacher.onnx", onnx_bytes()),
        "npz": upload_id(client, "data.npz", npz_bytes()),  # 40 samples of 4 features
    }


def _post(client: TestClient, ids: dict[str, str], **extra: Any) -> Any:
    return client.post("/jobs", json=spec_for(ids["onnx"], ids["npz"], **extra))


def test_a_billion_epochs_is_refused_naming_the_field_and_limit(client, ids, enqueued):
    r = _post(client, ids, annealing={"tau_max": 1, "phase1_epochs": 10**9, "phase2_epochs": 0})
    body = assert_problem(r, 422, "annealing.phase1_epochs")
    assert "phase1_epochs + phase2_epochs = 1000000000 + 0 = 1000000000" in body["detail"]
    assert "exceeds the server's limit of 10000" in body["detail"]
    assert enqueued == []


def test_batch_size_past_the_limit_is_refused(client, ids, enqueued):
    body = assert_problem(_post(client, ids, optimizer={"batch_size": 65536}), 422)
    assert body["field"] == "optimizer.batch_size"
    assert "batch_size = 65536 exceeds the server's limit of 8192" in body["detail"]


def test_a_69_g_parameter_mlp_is_refused_from_the_npz_header(client, ids, enqueued):
    huge = {"arch": "mlp", "options": {"hidden": [65536] * 16}}
    body = assert_problem(_post(client, ids, student=huge), 422, "student.options")
    expected = student_params("mlp", huge["options"], (4,), 2)
    assert f"has {expected} parameters for samples of shape (4,)" in body["detail"]
    assert "limit of 100000000" in body["detail"]
    assert enqueued == []


def test_resnet110_width_1024_on_a_builtin_is_refused(client, ids, enqueued):
    spec = {
        **spec_for(ids["onnx"], ids["npz"]),
        "student": {"arch": "resnet110", "options": {"width": 1024}},
        "dataset": {"source": "builtin:digits"},
    }
    body = assert_problem(client.post("/jobs", json=spec), 422, "student.options")
    assert "samples of shape (1, 8, 8) and 10 classes" in body["detail"]


def test_declared_num_classes_past_the_class_cap_is_refused(client, ids):
    r = _post(client, ids, dataset={"source": f"upload:{ids['npz']}", "num_classes": 10**6})
    body = assert_problem(r, 422, "dataset.num_classes")
    assert "num_classes = 1000000 exceeds the server's limit of 1000" in body["detail"]


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_limits_come_from_settings_and_the_sample_shape_from_headers(tmp_path: Path, queue):
    # The default mlp on 4 features and 2 classes fits exactly; one more feature does not.
    cap = student_params("mlp", {}, (4,), 2)
    settings = make_settings(tmp_path, max_student_params=cap, max_epochs=3)
    app = create_app(settings, queue)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        # 4 features, 2 classes; the limits are checked before the teacher's declared shapes.
        teacher = upload_id(client, "t.onnx", onnx_classifier_bytes(["N", 4], 2))
        y = np.arange(20) % 2
        four = upload_id(client, "four.npz", _npz(x=np.zeros((20, 4), np.float32), y=y))
        five = upload_id(client, "five.npz", _npz(x=np.zeros((20, 5), np.float32), y=y))
        table = upload_id(client, "t.csv", b"a,b,c,d,e,label\n1,2,3,4,5,0\n1,2,3,4,5,1\n")
        assert client.post("/jobs", json=spec_for(teacher, four)).status_code == 202
        for data in (five, table):
            body = assert_problem(client.post("/jobs", json=spec_for(teacher, data)), 422)
            assert f"shape (5,) and 2 classes, past the server's limit of {cap}" in body["detail"]
        long = spec_for(teacher, four, annealing={"tau_max": 2, "phase1_epochs": 4})
        body = assert_problem(client.post("/jobs", json=long), 422, "annealing.phase1_epochs")
        assert "= 4 + 10 = 14 exceeds the server's limit of 3" in body["detail"]
    assert len(queue.sent) == 1
