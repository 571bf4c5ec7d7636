"""Measured onnxruntime latency: median and p90 per batch size, within a time budget.

Every model of a report is timed the same way (CPU, a stated intra-op thread count,
warm-up runs first, then repeated runs until the median is stable or the model's budget is
spent), so the ratios computed from the figures compare like with like. Slow models get
fewer runs; the count of runs is reported beside each figure.

Stable: after at least STABLE_MIN_RUNS runs, the median of all runs so far moved by at most
STABLE_TOLERANCE since STABLE_CHECK_EVERY runs before. A model whose times settle stops
there (a 1 ms model after ~30 ms instead of the whole budget); a noisy one runs on until
the budget. The median and p90 are always those of every timed run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

BATCH_SIZES = (1, 32)
THREADS = 1  # one intra-op thread: what a small edge core gives, and stable on a shared host
BUDGET_S = 0.5  # per model, over all batch sizes (warm-up included)
WARMUP_RUNS = 2  # the first runs allocate buffers and pick kernels
MIN_RUNS = 5
MAX_RUNS = 200
STABLE_MIN_RUNS = 30
STABLE_CHECK_EVERY = 10
STABLE_TOLERANCE = 0.02  # relative change of the median

Clock = Callable[[], float]


@dataclass(frozen=True)
class BatchLatency:
    """Wall time of one inference of `batch` samples, in milliseconds."""

    batch: int
    median_ms: float
    p90_ms: float
    runs: int


@dataclass(frozen=True)
class Latency:
    """Latency of one model at each measured batch size, and how it was measured."""

    threads: int
    warmup_runs: int
    budget_s: float
    batches: tuple[BatchLatency, ...]

    def at(self, batch: int) -> BatchLatency:
        """The figures at `batch` (KeyError if that size was not measured)."""
        for b in self.batches:
            if b.batch == batch:
                return b
        raise KeyError(f"batch {batch} was not measured")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {"threads", "warmup_runs", "budget_s", "batch1": {...}, ...}."""
        out: dict[str, Any] = {
            "threads": self.threads,
            "warmup_runs": self.warmup_runs,
            "budget_s": self.budget_s,
        }
        for b in self.batches:
            out[f"batch{b.batch}"] = asdict(b)
        return out


def _number(value: object, kind: type, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is not a number")
    out = kind(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{what} is not a finite non-negative number")
    return out


def latency_from_dict(value: object) -> Latency:
    """Rebuild a Latency from its to_dict() form, refusing anything else (an untrusted answer)."""
    if not isinstance(value, dict):
        raise ValueError("latency is not an object")
    batches = []
    for b in BATCH_SIZES:
        d = value.get(f"batch{b}")
        if not isinstance(d, dict) or d.get("batch") != b:
            raise ValueError(f"batch{b} is missing")
        median, p90 = (
            _number(d.get("median_ms"), float, "median_ms"),
            _number(d.get("p90_ms"), float, "p90_ms"),
        )
        runs = _number(d.get("runs"), int, "runs")
        if p90 < median or not 1 <= runs <= MAX_RUNS:
            raise ValueError(f"batch{b} figures are inconsistent")
        batches.append(BatchLatency(b, median, p90, runs))
    return Latency(
        threads=_number(value.get("threads"), int, "threads"),
        warmup_runs=_number(value.get("warmup_runs"), int, "warmup_runs"),
        budget_s=_number(value.get("budget_s"), float, "budget_s"),
        batches=tuple(batches),
    )


def timing_session(path: Path, threads: int = THREADS) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads and sequential execution."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _example(session: ort.InferenceSession, shape: Sequence[int], batch: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if session.get_inputs()[0].type == "tensor(uint8)":  # a raw-input student: pixels
        return rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
    return rng.standard_normal((batch, *shape)).astype(np.float32)


def is_stable(before: float, now: float) -> bool:
    """Whether the median moved by at most STABLE_TOLERANCE of itself since the last check."""
    return abs(now - before) <= STABLE_TOLERANCE * now


def time_feed(
    session: ort.InferenceSession,
    feed: dict[str, np.ndarray],
    deadline_s: float,
    clock: Clock = time.perf_counter,
) -> BatchLatency:
    """Median and p90 of session.run(feed) after warm-up, within `deadline_s` (text uses it too)."""
    start = clock()
    for _ in range(WARMUP_RUNS):
        session.run(None, feed)
    times: list[float] = []
    last_median = math.inf
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or clock() - start < deadline_s):
        t0 = clock()
        session.run(None, feed)
        times.append((clock() - t0) * 1000.0)
        if len(times) % STABLE_CHECK_EVERY == 0:
            median = float(np.median(times))
            if len(times) >= STABLE_MIN_RUNS and is_stable(last_median, median):
                break
            last_median = median
    arr = np.asarray(times)
    return BatchLatency(
        batch=len(next(iter(feed.values()))),
        median_ms=float(np.median(arr)),
        p90_ms=float(np.percentile(arr, 90)),
        runs=len(times),
    )


def measure_latency(
    path: Path,
    input_shape: Sequence[int],
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    threads: int = THREADS,
    budget_s: float = BUDGET_S,
    clock: Clock = time.perf_counter,
) -> Latency:
    """Time the ONNX model at `path` on random inputs of one-sample shape `input_shape`.

    The budget is shared equally by the batch sizes; each gets at least MIN_RUNS timed
    runs, so a slow model may take longer than the budget (its run counts say so).
    """
    session = timing_session(path, threads)
    share = budget_s / max(1, len(batch_sizes))
    figures = tuple(
        time_feed(
            session, {session.get_inputs()[0].name: _example(session, input_shape, b)}, share, clock
        )
        for b in batch_sizes
    )
    return Latency(threads=threads, warmup_runs=WARMUP_RUNS, budget_s=budget_s, batches=figures)


Measure = Callable[[Path, Sequence[int]], Latency]
