"""The INT8 copy is kept only when its validation accuracy is within the tolerance of FP32."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from akd_core import report as report_module
from akd_core.data import load_dataset
from akd_core.report import STUDENT_INT8_ONNX, STUDENT_ONNX
from akd_core.spec import DatasetSpec
from tests.akd_core.report_support import write_report
from tests.report_contract import assert_report_follows_contract

pytestmark = pytest.mark.slow  # an ONNX export and a quantization each: a few seconds


def _int8_scores_lower_on_validation(monkeypatch: pytest.MonkeyPatch, by: float) -> None:
    """Make the INT8 copy's validation accuracy FP32's minus `by` (test split untouched)."""
    real = report_module.onnx_accuracy
    val_size = len(load_dataset(DatasetSpec(source="builtin:digits"), None, 0).y_val)

    def measured(path: Path, x: np.ndarray, y: np.ndarray, batch: int) -> float:
        if Path(path).name == STUDENT_INT8_ONNX and len(y) == val_size:
            return real(Path(path).with_name(STUDENT_ONNX), x, y, batch) - by
        return real(path, x, y, batch)

    monkeypatch.setattr(report_module, "onnx_accuracy", measured)


def test_int8_copy_is_dropped_when_its_accuracy_drop_exceeds_the_tolerance(tmp_path, monkeypatch):
    _int8_scores_lower_on_validation(monkeypatch, by=0.05)
    report = write_report(tmp_path, int8=True, int8_max_accuracy_drop=0.01)
    int8: dict[str, Any] = report["int8"]
    assert int8["kept"] is False
    assert not (tmp_path / STUDENT_INT8_ONNX).exists()
    assert int8["val_accuracy"] == pytest.approx(int8["fp32_val_accuracy"] - 0.05)
    assert "0.0100 below" in int8["reason"] and "file" not in int8
    assert "not kept" in (tmp_path / "report.md").read_text()
    assert_report_follows_contract(json.loads((tmp_path / "report.json").read_text()))


def test_int8_copy_is_kept_when_within_the_tolerance(tmp_path, monkeypatch):
    _int8_scores_lower_on_validation(monkeypatch, by=0.0)
    report = write_report(tmp_path, int8=True, int8_max_accuracy_drop=0.0)  # no drop allowed
    assert report["int8"]["kept"] is True and report["int8"]["file"] == STUDENT_INT8_ONNX
    assert (tmp_path / STUDENT_INT8_ONNX).stat().st_size < (tmp_path / STUDENT_ONNX).stat().st_size


def test_no_int8_copy_unless_asked(tmp_path):
    report = write_report(tmp_path)
    assert report["int8"] is None and not (tmp_path / STUDENT_INT8_ONNX).exists()
    assert_report_follows_contract(report)
