"""Helpers shared by the API tests: settings, sample files, upload and problem assertions."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from akd_service.config import Settings

# Keys-off servers answer only to loopback Host names, so test clients use one (not the
# TestClient default "testserver").
LOCAL_URL = "http://localhost"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated under tmp_path, with fast SSE polling for tests."""
    return Settings(data_dir=tmp_path / "data", sse_poll_s=0.02, **overrides)


def onnx_bytes() -> bytes:
    """A tiny valid ONNX classifier: (N, 4) -> (N, 3) via MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return model.SerializeToString()


def onnx_classifier_bytes(
    input_dims: list[int | str], classes: int | str, features: int | None = None
) -> bytes:
    """A tiny valid ONNX classifier declaring input `input_dims` and output ("N", classes):
    Flatten then MatMul over `features` inputs (the product of the fixed sample dims)."""
    from onnx import TensorProto, helper, numpy_helper

    k = classes if isinstance(classes, int) else 3
    n = features or int(np.prod([d for d in input_dims[1:] if isinstance(d, int)]))
    w = numpy_helper.from_array(np.ones((n, k), dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return model.SerializeToString()


def digits_onnx_bytes() -> bytes:
    """A tiny ONNX teacher that fits builtin:digits: (N, 1, 8, 8) -> (N, 10)."""
    return onnx_classifier_bytes(["N", 1, 8, 8], 10)


def npz_bytes() -> bytes:
    """A small features dataset as .npz (x, y)."""
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.normal(size=(40, 4)).astype(np.float32), y=rng.integers(0, 3, size=40))
    return buf.getvalue()


def pickle_bytes() -> bytes:
    """What torch.save of a plain object looks like to a sniffer: a protocol-2+ pickle."""
    return pickle.dumps({"state_dict": {"w": [1.0, 2.0]}}, protocol=4)


def upload(client: TestClient, name: str, data: bytes, **kw: Any) -> Any:
    """POST /uploads a file; return the response."""
    return client.post("/uploads", files={"file": (name, data)}, **kw)


def upload_id(client: TestClient, name: str, data: bytes, **kw: Any) -> str:
    """Upload and return the id (asserting success)."""
    r = upload(client, name, data, **kw)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def spec_for(teacher_id: str, dataset_id: str, **extra: Any) -> dict[str, Any]:
    """A minimal valid spec over two uploads."""
    return {
        "teacher": {"source": f"upload:{teacher_id}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": f"upload:{dataset_id}"},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
        **extra,
    }


def assert_problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 body with the given status (and field)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    for key in ("type", "title", "status", "detail", "instance"):
        assert key in body, body
    assert body["status"] == status
    assert len(body["detail"]) > 10
    if field is not None:
        assert body.get("field") == field, body
    return dict(body)
