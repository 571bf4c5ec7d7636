"""INT8 copies of student.onnx: dynamic (MatMul/Gemm) and static QDQ per-channel quantization.

Each candidate is measured like the FP32 file: accuracy on the validation split (which
decides) and on the test split (which is reported), agreement with FP32's predictions,
file size and onnxruntime latency. A candidate is shipped as student.int8.onnx only when
its validation accuracy is within the spec's tolerance of FP32's AND it is measured faster
(median at batch 1) or smaller (file size); otherwise the report says which check failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort

from akd_core.export import _set_metadata, read_metadata
from akd_core.fileio import atomic_write
from akd_core.latency import Latency, Measure
from akd_core.models.onnx_runner import make_session, run_batched

Method = Literal["dynamic", "static_qdq"]
LABELS: dict[Method, str] = {
    "dynamic": "dynamic (MatMul/Gemm)",
    "static_qdq": "static QDQ (per-channel)",
}
CALIBRATION_SAMPLES = 256  # training samples that set the activation ranges
# Calibration feeds at most this many input bytes per run (at least one sample). MinMax keeps
# the min and max over all runs, so the batching does not change the quantized model (the
# same bytes at batch 32 and 256, measured); fewer, larger runs are faster for small inputs.
_CALIBRATION_BATCH_BYTES = 4 * 1024**2
# "Faster" means at least 5% below FP32's median at batch 1: closer than that is timing noise.
FASTER_BELOW = 0.95


@contextlib.contextmanager
def _root_logging_at(level: int) -> Iterator[None]:
    # onnxruntime.quantization advises shape pre-processing on the root logger at WARNING
    # at every call; the advice does not change these small graphs, so keep it off the CLI.
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(level, before))
    try:
        yield
    finally:
        root.setLevel(before)


def _keep_metadata(src: Path, tmp: Path) -> None:
    # The quantizers drop metadata_props; the INT8 file must describe itself too.
    proto = onnx.load(str(tmp))
    _set_metadata(proto, read_metadata(src))
    onnx.save_model(proto, str(tmp))


def quantize_int8(src: Path, dst: Path) -> Path:
    """Write a dynamically quantized copy of `src` (MatMul/Gemm weights in INT8) to `dst`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path) -> None:
        with _root_logging_at(logging.ERROR):
            quantize_dynamic(
                str(src), str(tmp), op_types_to_quantize=["MatMul", "Gemm"],
                weight_type=QuantType.QInt8,
            )  # fmt: skip
        _keep_metadata(src, tmp)

    return atomic_write(dst, write)


def quantize_static_qdq(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """Write a static QDQ copy of `src` (per-channel INT8 weights, UINT8 activations) to `dst`.

    Activation ranges come from `calibration`: inputs as the model takes them (training data).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = data_input_name(src)
    step = calibration_batch(calibration)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [calibration[i : i + step] for i in range(0, len(calibration), step)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {name: np.ascontiguousarray(batch)}

    def write(tmp: Path) -> None:
        # The calibrator writes an augmented model next to its working files: a temp folder.
        with _root_logging_at(logging.ERROR), tempfile.TemporaryDirectory() as work:
            cwd = os.getcwd()
            os.chdir(work)
            try:
                quantize_static(
                    str(src), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                )  # fmt: skip
            finally:
                os.chdir(cwd)
        _keep_metadata(src, tmp)

    return atomic_write(dst, write)


def calibration_batch(calibration: np.ndarray) -> int:
    """Samples per calibration run: as many as fit in _CALIBRATION_BATCH_BYTES, at least one."""
    per_sample = max(1, calibration[:1].nbytes)
    return max(1, min(len(calibration), _CALIBRATION_BATCH_BYTES // per_sample))


def data_input_name(path: Path) -> str:
    """The name of the graph's first input that is not a weight (read without a session)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return next(v.name for v in graph.input if v.name not in weights)


def has_conv(path: Path) -> bool:
    """Whether the graph has Conv nodes (the students static QDQ is tried for)."""
    proto = onnx.load(str(path), load_external_data=False)
    return any(n.op_type == "Conv" for n in proto.graph.node)


@dataclass(frozen=True)
class Split:
    """Inputs as the exported model takes them, and their labels."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Measured:
    """One ONNX file as measured: predictions, accuracy per split, size and latency."""

    val_pred: np.ndarray
    test_pred: np.ndarray
    val_accuracy: float
    accuracy: float
    size_bytes: int
    latency: Latency
    test_logits: np.ndarray | None = None  # (N, K) on the test split: parity reuses them

    @property
    def ms_batch1(self) -> float:
        """Median latency at batch 1 (the deciding speed figure)."""
        return self.latency.at(1).median_ms


def measure_file(
    path: Path,
    val: Split,
    test: Split,
    input_shape: list[int],
    measure: Measure,
    session: ort.InferenceSession | None = None,
) -> Measured:
    """Predictions and accuracy on both splits, file size and latency of one ONNX file;
    `session`: one already open on this file (default threads), else one is opened."""
    session = session if session is not None else make_session(path)
    val_pred = run_batched(session, val.x, 512).argmax(1) if len(val.y) else np.zeros(0, int)
    test_logits = run_batched(session, test.x, 512) if len(test.y) else None
    test_pred = test_logits.argmax(1) if test_logits is not None else np.zeros(0, int)
    return Measured(
        val_pred=val_pred,
        test_pred=test_pred,
        val_accuracy=float(np.mean(val_pred == val.y)) if len(val.y) else 0.0,
        accuracy=float(np.mean(test_pred == test.y)) if len(test.y) else 0.0,
        size_bytes=path.stat().st_size,
        latency=measure(path, input_shape),
        test_logits=test_logits,
    )


def is_faster(fp32: Measured, q: Measured) -> bool:
    """Whether `q` is measured faster than FP32 at batch 1, beyond timing noise."""
    return q.ms_batch1 <= FASTER_BELOW * fp32.ms_batch1


def _speed_size(fp32: Measured, q: Measured) -> tuple[bool, bool, str]:
    """(faster, smaller, a sentence with the measured figures)."""
    faster, smaller = is_faster(fp32, q), q.size_bytes < fp32.size_bytes
    speed = q.ms_batch1 / fp32.ms_batch1 if fp32.ms_batch1 > 0 else 1.0
    speed_text = (
        f"{1 / speed:.2f}x faster" if speed < 1 else f"{speed:.2f}x slower"
    ) + f" than FP32 ({fp32.ms_batch1:.3f} ms -> {q.ms_batch1:.3f} ms, batch 1)"
    size = fp32.size_bytes / q.size_bytes if q.size_bytes else 1.0
    size_text = (
        f"{size:.2f}x smaller" if smaller else f"{1 / size:.2f}x larger"
    ) + f" ({fp32.size_bytes:,} -> {q.size_bytes:,} bytes)"
    return faster, smaller, f"{speed_text}; {size_text}"


def verdict(method: Method, fp32: Measured, q: Measured, tolerance: float) -> tuple[bool, str]:
    """Whether the candidate may ship, and the sentence saying why (or why not)."""
    faster, smaller, figures = _speed_size(fp32, q)
    label = LABELS[method]
    if fp32.val_accuracy - q.val_accuracy > tolerance:
        return False, (
            f"{label}: validation accuracy {q.val_accuracy:.4f} is more than {tolerance:.4f} "
            f"below FP32's {fp32.val_accuracy:.4f}; {figures}"
        )
    if not (faster or smaller):
        return False, f"{label}: neither faster nor smaller: {figures}"
    return True, f"{label}: validation accuracy within {tolerance:.4f} of FP32; {figures}"


def candidate_dict(
    method: Method, fp32: Measured, q: Measured, ok: bool, sentence: str
) -> dict[str, Any]:
    """One candidate's figures for report.json."""
    return {
        "method": method,
        "accuracy": q.accuracy,
        "val_accuracy": q.val_accuracy,
        "agreement_with_fp32": float(np.mean(q.test_pred == fp32.test_pred))
        if len(q.test_pred)
        else 1.0,
        "size_bytes": q.size_bytes,
        "latency": q.latency.to_dict(),
        "faster": is_faster(fp32, q),
        "smaller": q.size_bytes < fp32.size_bytes,
        "passed": ok,
        "verdict": sentence,
    }
