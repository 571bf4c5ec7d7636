"""Static QDQ calibration: batched by input bytes, and the batching does not change the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import akd_core.int8 as int8
from akd_core.export import export_onnx
from akd_core.int8 import calibration_batch, data_input_name, quantize_static_qdq
from akd_core.models import build_model

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("resnet8", SHAPE, 4)
    return export_onnx(model, SHAPE, tmp_path_factory.mktemp("out") / "student.onnx", {})


def _graph_bytes(path: Path) -> bytes:
    return onnx.load(str(path)).graph.SerializeToString()


def test_calibrating_in_one_run_or_many_writes_the_same_model(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wide spread of values: a batch that missed some samples would set other ranges.
    x = np.random.default_rng(0).standard_normal((64, *SHAPE)).astype(np.float32)
    x[-1] *= 10
    whole = quantize_static_qdq(exported, tmp_path / "whole.onnx", x)
    assert calibration_batch(x) == 64  # 196 KiB: one run
    monkeypatch.setattr(int8, "_CALIBRATION_BATCH_BYTES", x[:1].nbytes * 16)  # 4 runs of 16
    assert calibration_batch(x) == 16
    batched = quantize_static_qdq(exported, tmp_path / "batched.onnx", x)
    assert _graph_bytes(whole) == _graph_bytes(batched)


def test_a_calibration_run_holds_at_most_the_byte_budget_and_one_sample() -> None:
    images = np.zeros((256, 3, 224, 224), np.float32)  # 588 KiB per sample
    assert calibration_batch(images) == int8._CALIBRATION_BATCH_BYTES // images[:1].nbytes == 6
    assert calibration_batch(np.zeros((256, 1, 8, 8), np.float32)) == 256  # digits: one run
    assert calibration_batch(np.zeros((3, 3, 2048, 2048), np.float32)) == 1  # past the budget


def test_the_data_input_is_named_without_the_weights_listed_as_inputs(
    exported: Path, tmp_path: Path
) -> None:
    proto = onnx.load(str(exported))
    weight = proto.graph.initializer[0]
    proto.graph.input.insert(
        0, onnx.helper.make_tensor_value_info(weight.name, weight.data_type, list(weight.dims))
    )
    old_style = tmp_path / "old.onnx"
    onnx.save(proto, str(old_style))
    assert data_input_name(exported) == data_input_name(old_style) == "input"


def test_the_fp32_file_is_measured_on_the_session_its_export_probe_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One onnxruntime session per exported file: the parity probe's is reused for accuracy."""
    from akd_core.export import export_checked
    from akd_core.int8 import Split, measure_file
    from akd_core.latency import measure_latency

    torch.manual_seed(0)
    model = build_model("resnet8", SHAPE, 4).eval()
    x = np.random.default_rng(0).standard_normal((12, *SHAPE)).astype(np.float32)
    record = export_checked(model, SHAPE, tmp_path / "student.onnx", {}, probe=x[:8])
    assert record.session is not None
    expected = model(torch.from_numpy(x)).argmax(1).numpy()

    def no_second_session(path: Path) -> None:
        raise AssertionError(f"a second accuracy session was opened on {path.name}")

    monkeypatch.setattr(int8, "make_session", no_second_session)
    split = Split(x, expected)
    measured = measure_file(record.path, split, split, list(SHAPE), measure_latency, record.session)
    assert measured.accuracy == measured.val_accuracy == 1.0
    assert (
        record.to_dict()["exporter"] == "torchscript"
    )  # the session is not part of the record's JSON
    assert "session" not in record.to_dict()
