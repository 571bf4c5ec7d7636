"""Choose the INT8 copy to ship: every candidate measured, the decision and its reasons stated."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from akd_core.int8 import (
    LABELS,
    Measured,
    Method,
    Split,
    candidate_dict,
    has_conv,
    measure_file,
    quantize_int8,
    quantize_static_qdq,
    verdict,
)
from akd_core.latency import Measure, measure_latency


@dataclass(frozen=True)
class Int8Inputs:
    """What the selection measures on: validation decides, test is reported."""

    val: Split
    test: Split
    calibration: np.ndarray | None  # training samples as the model takes them; None: no QDQ
    input_shape: list[int]


def _methods(fp32_path: Path, inputs: Int8Inputs) -> tuple[list[Method], dict[str, str]]:
    """The candidates to try, and the ones skipped with the reason."""
    if not has_conv(fp32_path):
        return ["dynamic"], {"static_qdq": "not tried: the student has no Conv layers"}
    if inputs.calibration is None or not len(inputs.calibration):
        return ["dynamic"], {
            "static_qdq": "not tried: no training samples in the exported input's form "
            "to calibrate on (raw-input students)"
        }
    return ["dynamic", "static_qdq"], {}


def _quantize(method: Method, src: Path, dst: Path, inputs: Int8Inputs) -> Path:
    if method == "static_qdq":
        assert inputs.calibration is not None  # _methods offers QDQ only with calibration data
        return quantize_static_qdq(src, dst, inputs.calibration)
    return quantize_int8(src, dst)


def select_int8(
    fp32_path: Path,
    fp32: Measured,
    inputs: Int8Inputs,
    tolerance: float,
    out_path: Path,
    measure: Measure = measure_latency,
    measure_one: Callable[[Path], Measured] | None = None,
) -> dict[str, Any]:
    """Quantize, measure and judge each candidate; write the chosen one to `out_path`.

    Returns report.json's `int8` object. Among the candidates that pass (accuracy drop
    within `tolerance` on validation, and faster or smaller), the most accurate on
    validation is kept (ties: the faster at batch 1). `measure_one` measures a candidate
    file whose inputs are not one array (text students: token feeds); default measure_file.
    """
    methods, skipped = _methods(fp32_path, inputs)
    tried: list[tuple[Method, Path, Measured, bool, str]] = []
    try:
        for method in methods:
            tmp = out_path.with_name(f".{method}.{out_path.name}")
            try:
                _quantize(method, fp32_path, tmp, inputs)
            except Exception as exc:  # the quantizers raise many types on unsupported graphs
                skipped[method] = f"quantization failed: {exc}"[:300]
                continue
            q = (measure_one(tmp) if measure_one is not None
                 else measure_file(tmp, inputs.val, inputs.test, inputs.input_shape, measure))  # fmt: skip
            ok, sentence = verdict(method, fp32, q, tolerance)
            tried.append((method, tmp, q, ok, sentence))
        passing = [t for t in tried if t[3]]
        chosen = max(passing, key=lambda t: (t[2].val_accuracy, -t[2].ms_batch1), default=None)
        if chosen is not None:
            os.replace(chosen[1], out_path)
    finally:
        for _, tmp, *_ in tried:
            tmp.unlink(missing_ok=True)
    return _report(fp32, tried, chosen, skipped, tolerance, out_path.name)


def _report(
    fp32: Measured,
    tried: list[tuple[Method, Path, Measured, bool, str]],
    chosen: tuple[Method, Path, Measured, bool, str] | None,
    skipped: dict[str, str],
    tolerance: float,
    file_name: str,
) -> dict[str, Any]:
    candidates = [candidate_dict(m, fp32, q, ok, s) for m, _, q, ok, s in tried]
    # The figures at the top describe the shipped candidate, else the best one on validation.
    shown = chosen or max(tried, key=lambda t: t[2].val_accuracy, default=None)
    info: dict[str, Any] = {
        "kept": chosen is not None,
        "method": chosen[0] if chosen else None,
        "tolerance": tolerance,
        "fp32_val_accuracy": fp32.val_accuracy,
        "candidates": candidates,
        "skipped": skipped,
    }
    if shown is not None:
        q = shown[2]
        info.update(accuracy=q.accuracy, val_accuracy=q.val_accuracy, size_bytes=q.size_bytes,
                    latency_ms_batch1=q.ms_batch1)  # fmt: skip
    if chosen is not None:
        info["file"] = file_name
        info["why"] = chosen[4]
    else:
        reasons = [s for *_, s in tried] + [f"{LABELS[m]}: {r}" for m, r in skipped.items()  # type: ignore[index]
                                            if m in LABELS]  # fmt: skip
        info["reason"] = "; ".join(reasons) or "no INT8 candidate could be made"
    return info
