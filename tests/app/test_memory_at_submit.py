"""POST /jobs runs the memory estimate when the worker's memory is configured (AKD_WORKER_MEMORY_GB)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app_support import (
    LOCAL_URL,
    assert_problem,
    digits_onnx_bytes,
    make_settings,
    onnx_classifier_bytes,
    upload_id,
)
from fastapi.testclient import TestClient

from akd_service.config import Settings
from app.main import create_app
from tests.queue_support import RecordingQueue

BIG_BATCH = {
    "optimizer": {"batch_size": 4096},
    "student": {"arch": "cnn", "options": {"width": 64}},
}


def _client(settings: Settings, queue: RecordingQueue) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as c:
        yield c


@pytest.fixture
def limited(tmp_path: Path, queue: RecordingQueue) -> Iterator[TestClient]:
    """An app whose workers have 0.05 GiB (51 MiB) of memory."""
    yield from _client(make_settings(tmp_path, worker_memory_gb=0.05), queue)


def _spec(teacher: str, dataset: str, **over: Any) -> dict[str, Any]:
    return {
        "teacher": {"source": f"upload:{teacher}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": dataset},
        **over,
    }


def _post(client: TestClient, spec: dict[str, Any]) -> Any:
    return client.post("/jobs", json=spec, headers={"Content-Type": "application/json"})


def test_a_batch_too_large_for_the_worker_is_422_naming_the_batch_size(limited, enqueued):
    teacher = upload_id(limited, "teacher.onnx", digits_onnx_bytes())
    body = assert_problem(
        _post(limited, _spec(teacher, "builtin:digits", **BIG_BATCH)), 422, "optimizer.batch_size"
    )
    assert "the run needs an estimated" in body["detail"]
    assert "optimizer.batch_size 4096" in body["detail"]
    assert "of 0.05 GiB free on a worker (AKD_WORKER_MEMORY_GB=0.05)" in body["detail"]
    assert enqueued == [] and limited.get("/jobs").json()["items"] == []
    # Nothing stored is lost: the same upload with a batch that fits is accepted.
    assert _post(limited, _spec(teacher, "builtin:digits")).status_code == 202
    assert len(enqueued) == 1


def test_an_uploaded_npz_too_large_for_the_worker_names_max_train_samples(limited, enqueued):
    """The sample count and shape come from the stored npz's headers."""
    buf = io.BytesIO()
    x = np.zeros((4000, 3, 32, 32), np.float32)  # 49 MB of samples: the data dominates
    np.savez(buf, x=x, y=np.arange(4000) % 10)
    data = upload_id(limited, "big.npz", buf.getvalue())
    teacher = upload_id(limited, "teacher.onnx", onnx_classifier_bytes(["N", 3, 32, 32], 10))
    spec = _spec(teacher, f"upload:{data}")
    body = assert_problem(_post(limited, spec), 422, "dataset.max_train_samples")
    assert "cap dataset.max_train_samples" in body["detail"]
    assert enqueued == []
    spec["dataset"]["max_train_samples"] = 500  # the same stored upload, capped, fits
    assert _post(limited, spec).status_code == 202


def test_without_the_setting_the_api_leaves_memory_to_the_worker(client, enqueued):
    teacher = upload_id(client, "teacher.onnx", digits_onnx_bytes())
    assert _post(client, _spec(teacher, "builtin:digits", **BIG_BATCH)).status_code == 202
    assert len(enqueued) == 1


def test_the_setting_is_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AKD_WORKER_MEMORY_GB", "24")
    assert Settings(data_dir=tmp_path).worker_memory_gb == 24.0
    monkeypatch.setenv("AKD_WORKER_MEMORY_GB", "0")
    with pytest.raises(ValueError, match="worker_memory_gb"):
        Settings(data_dir=tmp_path)
