"""Time from starting an ONNX teacher's sandboxed process to its first prediction, before/after.

  before  the process imports torch while it starts, as every teacher process did before
          4a36057: the "torch" runtime's child, given the same ONNX file
  after   the "onnx" runtime's child: numpy, onnx and onnxruntime, never torch
Both are measured in this process, interleaved round by round (the machine is shared and
noisy), and printed with their ratio:
  cold          load_teacher + one predict, no spare process (the first teacher of a worker)
  back-to-back  a teacher loaded right after one that took a ready spare: it takes the
                spare that load started, still importing (a short job after a short job)
  RSS           the child's resident memory after its first prediction
`--busy N` keeps N extra processes spinning meanwhile (the other core busy).

    .venv/bin/python bench/sandbox_start.py [--rounds 5] [--busy 1] [--settle 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.sandbox import process, proxy
from akd_core.sandbox.proxy import SandboxedTeacher, SandboxPolicy
from akd_core.spec import TeacherSpec
from akd_core.teachers import load_teacher

CPU = torch.device("cpu")
SPEC = TeacherSpec(source="file:cnn.onnx", format="onnx")
X = torch.zeros(4, 1, 8, 8)  # builtin:digits samples


def rss_mb(teacher: SandboxedTeacher) -> float:
    """The teacher process's resident memory in MB (VmRSS)."""
    assert teacher._child is not None
    status = Path(f"/proc/{teacher._child.proc.pid}/status").read_text()
    kb = next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]
    return int(kb) / 1024


def first_prediction(path: Path, policy: SandboxPolicy) -> tuple[float, float]:
    """(seconds from load_teacher to the first predict's answer, the child's RSS in MB)."""
    t0 = time.perf_counter()
    teacher = load_teacher(SPEC, path, CPU, sandbox=policy)
    teacher.predict(X)
    seconds = time.perf_counter() - t0
    assert isinstance(teacher, SandboxedTeacher)
    rss = rss_mb(teacher)
    teacher.release()
    return seconds, rss


Measure = Callable[[Path, process.Runtime, float], tuple[float, float]]


def cold(path: Path, runtime: process.Runtime, settle_s: float) -> tuple[float, float]:
    """The first teacher of a process: no spare to take."""
    return first_prediction(path, SandboxPolicy(keep_warm=False))


def back_to_back(path: Path, runtime: process.Runtime, settle_s: float) -> tuple[float, float]:
    """A teacher right after one that took a spare ready for `settle_s`: it takes the next."""
    proxy.prestart(SandboxPolicy(), runtime)
    time.sleep(settle_s)  # the spare has imported everything, as after a long job
    first_prediction(path, SandboxPolicy())  # takes it and starts the next spare
    try:
        return first_prediction(path, SandboxPolicy(keep_warm=False))
    finally:
        process._Spare.stop()


def as_before(measure: Measure, path: Path, settle_s: float) -> tuple[float, float]:
    """`measure` with every teacher process started for the torch runtime, as before."""
    proxy.runtime_of = lambda fmt: "torch"  # type: ignore[assignment]
    try:
        return measure(path, "torch", settle_s)
    finally:
        proxy.runtime_of = process.runtime_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="extra spinning processes")
    parser.add_argument("--settle", type=float, default=15.0, help="s a spare gets to start")
    args = parser.parse_args()
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cnn = build_model("cnn-small", (1, 8, 8), 10).eval()
            path = export_onnx(cnn, (1, 8, 8), Path(tmp) / "cnn.onnx", {})
            cold(path, "onnx", 0)  # warm-up: page cache, the parent's first session
            print(f"load average {os.getloadavg()[0]:.1f}, {args.busy} extra spinning, "
                  f"{args.rounds} rounds, medians")  # fmt: skip
            measures: tuple[tuple[str, Measure], ...] = (
                ("cold", cold),
                ("back-to-back", back_to_back),
            )
            for name, measure in measures:
                before, after = [], []
                for _ in range(args.rounds):
                    before.append(as_before(measure, path, args.settle))
                    after.append(measure(path, "onnx", args.settle))
                b = statistics.median(s for s, _ in before)
                a = statistics.median(s for s, _ in after)
                rss_b = statistics.median(r for _, r in before)
                rss_a = statistics.median(r for _, r in after)
                print(f"{name:<13} before {b:6.2f} s  after {a:6.2f} s  ratio {b / a:5.1f}x  "
                      f"(child RSS {rss_b:.0f} -> {rss_a:.0f} MB)")  # fmt: skip
    finally:
        for p in spin:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
