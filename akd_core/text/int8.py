"""INT8 for text students: dynamic (MatMul/Gemm) quantization, judged by akd_core.int8_select.

Transformers spend their time in MatMul, which dynamic INT8 speeds up on CPU; static QDQ
is for conv students and is not tried. The same honest rule as for images: the INT8 copy
ships only if its validation accuracy is within the tolerance of FP32's AND it is measured
faster (one text at the longest measured length, 1 thread) or smaller; test accuracy is
reported beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from akd_core.int8 import Measured, Split
from akd_core.int8_select import Int8Inputs, select_int8
from akd_core.latency import BUDGET_S, THREADS, WARMUP_RUNS, Latency, time_feed, timing_session
from akd_core.text.data import TextDataset
from akd_core.text.export import text_feed_of_length, text_predictions


def measure_text_file(path: Path, ds: TextDataset, length: int) -> Measured:
    """Predictions and accuracy on validation and test, size, and latency of one text of `length`."""
    val_pred = text_predictions(path, ds.x_val, ds.inputs)
    test_pred = text_predictions(path, ds.x_test, ds.inputs)
    one = time_feed(timing_session(path, THREADS), text_feed_of_length(ds.inputs, length), BUDGET_S)
    return Measured(
        val_pred=val_pred,
        test_pred=test_pred,
        val_accuracy=float((val_pred == ds.y_val).mean()) if len(ds.y_val) else 0.0,
        accuracy=float((test_pred == ds.y_test).mean()) if len(ds.y_test) else 0.0,
        size_bytes=path.stat().st_size,
        latency=Latency(
            threads=THREADS, warmup_runs=WARMUP_RUNS, budget_s=BUDGET_S, batches=(one,)
        ),  # fmt: skip
    )


def text_int8(fp32_path: Path, ds: TextDataset, length: int, tolerance: float,
              out_path: Path) -> dict[str, Any]:  # fmt: skip
    """report.json's `int8` for a text student; writes `out_path` only when a candidate passes."""

    def measure(path: Path) -> Measured:
        return measure_text_file(path, ds, length)

    inputs = Int8Inputs(Split(ds.x_val, ds.y_val), Split(ds.x_test, ds.y_test), None,
                        [len(ds.inputs), length])  # fmt: skip
    info = select_int8(fp32_path, measure(fp32_path), inputs, tolerance, out_path,
                       measure_one=measure)  # fmt: skip
    info["latency_sequence_length"] = length  # the speed figures are of one text this long
    return info
