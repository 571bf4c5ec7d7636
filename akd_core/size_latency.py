"""The measured size and latency table of report.json: teacher, student and INT8 side by side.

Ratios are computed from the measured figures in the same table (never estimated):
speedup = the teacher's median latency / the model's, at the same batch size and thread
count; size and parameter ratios = the teacher's figure / the model's.
"""

from __future__ import annotations

from typing import Any

from akd_core.latency import BATCH_SIZES, BUDGET_S, THREADS

TEACHER_NOT_TIMED = (
    "not timed: the worker runs the teacher only inside its sandbox process, where a "
    "timing would include the pipe and not be comparable with the onnxruntime figures"
)


def teacher_latency(teacher: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the teacher's latency timed in its sandbox process, or None and a note saying why not)."""
    if teacher.format != "onnx":
        return None, (
            f"not timed: a {teacher.format} teacher runs in torch, not onnxruntime, so no figure "
            "comparable with the student's exists"
        )
    timer = getattr(teacher, "latency", None)  # only the sandboxed teacher can time itself
    shape = list(teacher.declared_input.shape[1:]) if teacher.declared_input else []
    if timer is None or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        return None, f"not timed: the teacher's input shape {shape} is not fixed past the batch"
    latency = timer(shape)
    return latency, None if latency else "not timed: the teacher process could not time it"


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num and den else None


def _medians(latency: dict[str, Any] | None) -> dict[str, float]:
    if not latency:
        return {}
    return {f"batch{b}": latency[f"batch{b}"]["median_ms"] for b in BATCH_SIZES
            if f"batch{b}" in latency}  # fmt: skip


def _row(name: str, file: str | None, params: int | None, size: int | None,
         latency: dict[str, Any] | None, note: str | None) -> dict[str, Any]:  # fmt: skip
    return {"model": name, "file": file, "params": params, "size_bytes": size,
            "latency": latency, "note": note}  # fmt: skip


def _compare(row: dict[str, Any], base: dict[str, Any], key: str) -> None:
    """Add `<key>`: speedup per batch size, size and parameter ratios against `base`."""
    mine, theirs = _medians(row["latency"]), _medians(base["latency"])
    speed = {b: _ratio(theirs.get(b), ms) for b, ms in mine.items()}
    row[key] = {
        "speedup": {b: s for b, s in speed.items() if s is not None} or None,
        "size_ratio": _ratio(base["size_bytes"], row["size_bytes"]),
        "params_ratio": _ratio(base["params"], row["params"]),
    }


def size_latency_table(
    teacher: dict[str, Any], student_params: int, onnx_info: dict[str, Any],
    int8: dict[str, Any] | None,
) -> dict[str, Any]:  # fmt: skip
    """report.json's `measured`: rows of params, file size and latency, with ratios."""
    teacher_latency = teacher.get("latency")
    t = _row(f"teacher ({teacher.get('format')})", None, teacher.get("params"),
             teacher.get("size_bytes"), teacher_latency,
             teacher.get("latency_note") or (None if teacher_latency else TEACHER_NOT_TIMED))  # fmt: skip
    s = _row("student", onnx_info["file"], student_params, onnx_info["size_bytes"],
             onnx_info.get("latency"), None)  # fmt: skip
    rows = [t, s]
    if int8 and int8.get("kept"):
        chosen = next(c for c in int8["candidates"] if c["method"] == int8["method"])
        q = _row("student INT8", int8["file"], student_params, chosen["size_bytes"],
                 chosen["latency"], f"{int8['method']} quantization")  # fmt: skip
        _compare(q, s, "vs_student_fp32")
        rows.append(q)
    for row in rows[1:]:
        _compare(row, t, "vs_teacher")
    return {
        "engine": "onnxruntime, CPUExecutionProvider",
        "threads": THREADS,
        "batch_sizes": list(BATCH_SIZES),
        "budget_s_per_model": BUDGET_S,
        "statistic": "median and p90 of wall time per run after warm-up runs, over the runs "
        "stated per batch size (timing stops once the median is stable, or at the time budget)",
        "rows": rows,
    }
