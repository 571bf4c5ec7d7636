"""ONNX export: one self-contained file, dynamic batch, metadata, parity, INT8, accuracy, latency."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from akd_core.export import (
    export_checked,
    export_onnx,
    onnx_accuracy,
    onnx_parity,
    read_metadata,
)
from akd_core.int8 import quantize_int8, quantize_static_qdq
from akd_core.latency import measure_latency
from akd_core.models import build_model

torch.set_num_threads(1)
SHAPE = (3, 16, 16)
METADATA = {
    "labels": json.dumps(["cat", "dog", "frog", "ship"]),
    "preprocessing": json.dumps({"normalize": "train-mean-std", "mean": [0.5] * 3}),
    "input_shape": json.dumps(list(SHAPE)),
}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model("resnet8", SHAPE, 4)
    net.train()  # the caller's model may be mid-training: export must not change that
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, model: torch.nn.Module) -> Path:
    return export_onnx(model, SHAPE, tmp_path_factory.mktemp("out") / "student.onnx", METADATA)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((20, *SHAPE)).astype(np.float32)


def test_export_writes_one_self_contained_file(exported: Path) -> None:
    assert [p.name for p in exported.parent.iterdir()] == ["student.onnx"]  # no .data, no temp


def test_exported_model_has_a_dynamic_batch_axis(exported: Path) -> None:
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 7):
        (out,) = session.run(None, {"input": np.zeros((batch, *SHAPE), np.float32)})
        assert out.shape == (batch, 4)


def test_metadata_round_trips(exported: Path) -> None:
    meta = read_metadata(exported)
    assert {k: meta[k] for k in METADATA} == METADATA
    assert json.loads(meta["labels"])[3] == "ship"


def test_onnx_matches_torch(exported: Path, model: torch.nn.Module, x: np.ndarray) -> None:
    parity = onnx_parity(exported, model, x, batch_size=6)
    assert parity["max_abs_diff"] < 1e-4
    assert parity["argmax_agreement"] == 1.0


def test_parity_reuses_given_onnx_logits_and_copies_only_a_training_model(
    exported: Path, model: torch.nn.Module, x: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report passes the test logits it measured: the file is not run a second time."""
    import akd_core.export as export_module

    measured = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )[0]
    expected = onnx_parity(exported, model, x)
    monkeypatch.setattr(export_module, "make_session", lambda *a, **k: pytest.fail("ran again"))
    assert onnx_parity(exported, model, x, onnx_out=measured) == pytest.approx(expected)
    assert model.training  # a training-mode model was copied, not switched to eval
    evaluated = copy.deepcopy(model).eval()
    copies = []
    monkeypatch.setattr(export_module.copy, "deepcopy", lambda m: copies.append(m) or m)
    onnx_parity(exported, evaluated, x, onnx_out=measured)
    assert copies == []  # already on CPU in eval mode: used as it is


def test_export_leaves_the_callers_model_unchanged(exported: Path, model: torch.nn.Module) -> None:
    assert model.training
    assert next(model.parameters()).requires_grad


def test_metadata_values_must_be_strings(tmp_path: Path, model: torch.nn.Module) -> None:
    with pytest.raises(TypeError, match="labels"):
        export_onnx(model, SHAPE, tmp_path / "s.onnx", {"labels": ["a", "b"]})  # type: ignore[dict-item]
    assert not list(tmp_path.iterdir())


def test_parity_notices_a_different_model(exported: Path, x: np.ndarray) -> None:
    torch.manual_seed(1)
    other = build_model("resnet8", SHAPE, 4)
    assert onnx_parity(exported, other, x)["max_abs_diff"] > 1e-3


def _fp32_predictions(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0].argmax(1)


@pytest.mark.parametrize("method", ["dynamic", "static_qdq"])
def test_int8_copy_runs_and_keeps_metadata(exported: Path, x: np.ndarray, method: str) -> None:
    out = exported.parent / "student.int8.onnx"
    dst = (
        quantize_int8(exported, out)
        if method == "dynamic"
        else quantize_static_qdq(exported, out, x)
    )
    try:
        if method == "static_qdq":  # per-channel INT8 conv weights
            assert dst.stat().st_size < exported.stat().st_size / 2
        assert read_metadata(dst)["labels"] == METADATA["labels"]
        # Labels = the FP32 model's own predictions: INT8 should agree on most of them.
        assert onnx_accuracy(dst, x, _fp32_predictions(exported, x), batch_size=8) >= 0.8
    finally:
        dst.unlink()


def test_accuracy_counts_wrong_labels(exported: Path, x: np.ndarray) -> None:
    right = _fp32_predictions(exported, x)
    assert onnx_accuracy(exported, x, right, batch_size=8) == 1.0
    wrong = (right + 1) % 4
    assert onnx_accuracy(exported, x, wrong, batch_size=8) == 0.0


def test_latency_is_a_positive_median(exported: Path) -> None:
    ms = measure_latency(exported, SHAPE, batch_sizes=(1,)).at(1).median_ms
    assert 0.0 < ms < 1000.0


def test_mlp_on_features_exports_with_dynamic_batch(tmp_path: Path) -> None:
    net = build_model("mlp", (20,), 3, {"hidden": [8]})
    path = export_onnx(net, (20,), tmp_path / "m.onnx", {})
    feats = np.random.default_rng(1).standard_normal((7, 20)).astype(np.float32)
    assert onnx_parity(path, net, feats)["max_abs_diff"] < 1e-4


def test_the_cheaper_exporter_is_used_when_its_graph_matches_torch(tmp_path: Path) -> None:
    net = build_model("cnn-tiny", (1, 8, 8), 10)
    probe = np.random.default_rng(2).standard_normal((9, 1, 8, 8)).astype(np.float32)
    record = export_checked(net, (1, 8, 8), tmp_path / "s.onnx", {"k": "v"}, probe=probe)
    assert record.exporter == "torchscript" and len(record.attempts) == 1
    assert record.attempts[0].rejected is None and record.attempts[0].parity_max_abs_diff < 1e-5
    assert [p.name for p in tmp_path.iterdir()] == ["s.onnx"]  # one file: no .onnx.data


@pytest.mark.parametrize("broken", ["raises", "disagrees"])
def test_falls_back_to_the_other_exporter_when_parity_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    import akd_core.export as export

    def fail(*_args: object) -> None:
        raise RuntimeError("the TorchScript exporter cannot trace this model")

    real = export._torchscript_proto

    def disagree(model: torch.nn.Module, *rest: object) -> object:
        # Every logit 0.01 higher: the same classes, but not the trained model's numbers.
        shifted = copy.deepcopy(model)
        with torch.no_grad():
            [*_, last] = (m for m in shifted.modules() if isinstance(m, torch.nn.Linear))
            last.bias += 0.01
        return real(shifted, *rest)

    monkeypatch.setattr(export, "_torchscript_proto", fail if broken == "raises" else disagree)
    torch.manual_seed(0)
    net = build_model("cnn-tiny", (1, 8, 8), 10)
    digits = np.random.default_rng(2).standard_normal((5, 1, 8, 8)).astype(np.float32)
    record = export_checked(net, (1, 8, 8), tmp_path / "s.onnx", {"k": "v"}, probe=digits)
    assert [a.exporter for a in record.attempts] == ["torchscript", "dynamo"]
    first = record.attempts[0].rejected or ""
    assert ("cannot trace" in first) if broken == "raises" else first.startswith("parity failed")
    assert record.exporter == "dynamo" and record.to_dict()["exporter"] == "dynamo"
    assert read_metadata(record.path) == {"k": "v"}
    assert onnx_parity(record.path, net, digits)["max_abs_diff"] < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["s.onnx"]
