"""INT8 is shipped only when it is within the accuracy tolerance AND measured faster or smaller."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from akd_core.int8 import Split, measure_file
from akd_core.int8_select import Int8Inputs, select_int8
from akd_core.latency import BatchLatency, Latency
from akd_core.report import STUDENT_INT8_ONNX, STUDENT_ONNX
from tests.akd_core.int8_support import digits, export_report, fit, student
from tests.report_contract import assert_report_follows_contract

pytestmark = pytest.mark.slow  # exports, quantizations and timings: a few seconds each

torch.set_num_threads(1)


def _shipped(report: dict, out: Path) -> dict:
    int8 = report["int8"]
    chosen = next(c for c in int8["candidates"] if c["method"] == int8["method"])
    assert (out / STUDENT_INT8_ONNX).stat().st_size == chosen["size_bytes"] == int8["size_bytes"]
    return chosen


def test_mlp_student_ships_dynamic_int8_within_tolerance_and_smaller(tmp_path: Path) -> None:
    ds = digits()
    model = fit(student("mlp", ds, {"hidden": [32]}), ds, steps=60)
    report = export_report(tmp_path, model, ds, int8=True, int8_max_accuracy_drop=0.02)
    int8 = report["int8"]
    assert int8["kept"] is True and int8["method"] == "dynamic"
    assert int8["skipped"] == {"static_qdq": "not tried: the student has no Conv layers"}
    chosen = _shipped(report, tmp_path)
    assert report["onnx"]["val_accuracy"] - chosen["val_accuracy"] <= 0.02
    assert chosen["smaller"] and chosen["size_bytes"] < (tmp_path / STUDENT_ONNX).stat().st_size
    assert chosen["passed"] and "smaller" in int8["why"]
    assert chosen["agreement_with_fp32"] >= 0.9 and chosen["accuracy"] >= 0.8  # a trained model
    assert [r["model"] for r in report["measured"]["rows"]][-1] == "student INT8"
    assert_report_follows_contract(json.loads((tmp_path / "report.json").read_text()))


def test_conv_student_tries_static_qdq_and_ships_a_passing_candidate(tmp_path: Path) -> None:
    ds = digits()
    report = export_report(tmp_path, student("resnet8", ds), ds, "resnet8", int8=True,
                           int8_max_accuracy_drop=0.05)  # fmt: skip
    int8 = report["int8"]
    assert [c["method"] for c in int8["candidates"]] == ["dynamic", "static_qdq"]
    qdq = int8["candidates"][1]
    # Calibrated per-channel INT8 conv weights: about a third of the FP32 file.
    assert qdq["size_bytes"] < 0.5 * report["onnx"]["size_bytes"] and qdq["smaller"]
    assert int8["kept"] is True
    chosen = _shipped(report, tmp_path)
    assert chosen["passed"] and (chosen["faster"] or chosen["smaller"])
    assert int8["fp32_val_accuracy"] - chosen["val_accuracy"] <= 0.05
    assert_report_follows_contract(report)


def test_lossy_int8_is_refused_and_the_report_says_why(tmp_path: Path) -> None:
    ds = digits()
    model = fit(student("mlp", ds, {"hidden": []}), ds, steps=150)  # logistic regression
    with torch.no_grad():
        # The same huge weight in every class row shifts all logits equally: FP32 predicts
        # exactly as before, but INT8's one scale must now cover it, so the real weights round to 0.
        model.net.net[0].weight[:, 0] = 500.0
    report = export_report(tmp_path, model, ds, int8=True, int8_max_accuracy_drop=0.0)
    int8 = report["int8"]
    assert report["onnx"]["accuracy"] >= 0.85  # the FP32 student is fine
    assert int8["kept"] is False and "file" not in int8 and int8["method"] is None
    assert not (tmp_path / STUDENT_INT8_ONNX).exists()
    assert int8["val_accuracy"] < int8["fp32_val_accuracy"] - 0.2
    assert "dynamic (MatMul/Gemm): validation accuracy" in int8["reason"]
    assert "0.0000 below FP32's" in int8["reason"]
    assert "0.0000 below FP32's" in (tmp_path / "report.md").read_text()  # the card says why
    assert_report_follows_contract(json.loads((tmp_path / "report.json").read_text()))


def _timer_giving_int8(ms: float):
    """An injected latency measure: FP32 takes 1 ms per run, every INT8 file `ms`."""

    def measure(path: Path, shape: Sequence[int]) -> Latency:
        t = ms if ".int8." in Path(path).name else 1.0
        return Latency(1, 2, 0.5, (BatchLatency(1, t, t, 5), BatchLatency(32, 8 * t, 8 * t, 5)))

    return measure


@pytest.fixture(scope="module")
def tiny_conv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Int8Inputs]:
    """cnn-tiny (1,442 parameters): its INT8 copies are larger than FP32 (scales, zero points)."""
    ds = digits()
    out = tmp_path_factory.mktemp("tiny")
    export_report(out, student("cnn-tiny", ds), ds, "cnn-tiny")
    rng = np.random.default_rng(0)
    calibration = ds.x_train[rng.permutation(len(ds.x_train))[:64]]
    inputs = Int8Inputs(Split(ds.x_val, ds.y_val), Split(ds.x_test, ds.y_test), calibration,
                        list(ds.input_shape))  # fmt: skip
    return out / STUDENT_ONNX, inputs


@pytest.mark.parametrize(("factor", "kept"), [(2.0, False), (0.5, True)])
def test_int8_that_is_larger_ships_only_when_measured_faster(
    tiny_conv: tuple[Path, Int8Inputs], tmp_path: Path, factor: float, kept: bool
) -> None:
    fp32_path, inputs = tiny_conv
    measure = _timer_giving_int8(factor)
    fp32 = measure_file(fp32_path, inputs.val, inputs.test, inputs.input_shape, measure)
    out = tmp_path / STUDENT_INT8_ONNX
    int8 = select_int8(fp32_path, fp32, inputs, 1.0, out, measure)  # any accuracy passes
    assert [c["smaller"] for c in int8["candidates"]] == [False, False]
    assert int8["kept"] is kept and out.exists() is kept
    assert [p.name for p in tmp_path.iterdir()] == ([STUDENT_INT8_ONNX] if kept else [])
    if kept:
        assert "2.00x faster than FP32 (1.000 ms -> 0.500 ms, batch 1)" in int8["why"]
        assert "larger (" in int8["why"]
    else:
        slower = (
            "neither faster nor smaller: 2.00x slower than FP32 (1.000 ms -> 2.000 ms, batch 1)"
        )
        assert int8["reason"].count(slower) == 2
