"""Cost of running the teacher in its sandboxed process instead of in the worker's process.

Measured in this process and printed as ratios (the machine is shared and noisy):
  start        load_teacher until the teacher answers: a cold child (imports torch) and a
               child taken from the warm spare (the second and later teachers of a process)
  digits       logits_for over builtin:digits (1797 x 1x8x8), batch 256: the teacher cache
  per-batch    predict on every batch of 64 of digits, and of 3x32x32 images with a ResNet-8
               (what the trainer does when random augmentation is on)
Teachers are untrained (timing does not depend on the weights): cnn-small for digits as
ONNX and TorchScript, resnet8 as TorchScript for the image loop.

    .venv/bin/python bench/teacher_sandbox.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from akd_core.data.builtin import load_builtin
from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.sandbox.proxy import SandboxPolicy
from akd_core.spec import TeacherSpec
from akd_core.teachers import Teacher, load_teacher, load_teacher_in_process

CPU = torch.device("cpu")


def median_s(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_times(spec: TeacherSpec, path: Path, repeats: int) -> tuple[float, float]:
    """(cold, warm) seconds from load_teacher to a loaded teacher."""
    cold = SandboxPolicy(keep_warm=False)
    colds, warms = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_teacher(spec, path, CPU, sandbox=cold).release()
        colds.append(time.perf_counter() - t0)
    load_teacher(spec, path, CPU).release()  # leaves a spare behind
    for _ in range(repeats):
        time.sleep(4.0)  # let the spare finish importing torch, as between two jobs
        t0 = time.perf_counter()
        teacher = load_teacher(spec, path, CPU)
        warms.append(time.perf_counter() - t0)
        teacher.release()
    return statistics.median(colds), statistics.median(warms)


def per_batch(teacher: Teacher, x: torch.Tensor, batch: int) -> None:
    """One pass of predict over x in batches, as the trainer calls it."""
    for i in range(0, len(x), batch):
        teacher.predict(x[i : i + batch])


def compare(name: str, spec: TeacherSpec, path: Path, fn: Callable[[Teacher], object],
            repeats: int, calls: int) -> None:  # fmt: skip
    """Print in-process vs sandboxed time of fn(teacher), their ratio and the cost per call."""
    local = load_teacher_in_process(spec, path, CPU)
    boxed = load_teacher(spec, path, CPU)
    try:
        a = median_s(lambda: fn(local), repeats)
        b = median_s(lambda: fn(boxed), repeats)
    finally:
        boxed.release()
    per_call = (b - a) / calls * 1e3
    print(f"{name:<34} in-process {a * 1e3:8.1f} ms  sandboxed {b * 1e3:8.1f} ms  "
          f"ratio {b / a:5.2f}  (+{per_call:.2f} ms per call, {calls} calls)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    digits = load_builtin("digits").x / 16.0  # (1797, 1, 8, 8) float32
    images = torch.rand(512, 3, 32, 32)
    with tempfile.TemporaryDirectory() as tmp:
        cnn = build_model("cnn-small", (1, 8, 8), 10).eval()
        onnx_path = export_onnx(cnn, (1, 8, 8), Path(tmp) / "cnn.onnx", {})
        ts_path = Path(tmp) / "cnn.pt"
        torch.jit.save(torch.jit.script(cnn), str(ts_path))
        resnet_path = Path(tmp) / "resnet8.pt"
        torch.jit.save(torch.jit.script(build_model("resnet8", (3, 32, 32), 10).eval()),
                       str(resnet_path))  # fmt: skip
        onnx_spec = TeacherSpec(source="file:cnn.onnx", format="onnx")
        ts_spec = TeacherSpec(source="file:cnn.pt", format="torchscript")

        cold, warm = start_times(ts_spec, ts_path, args.repeats)
        print(f"sandbox start (TorchScript cnn-small): cold {cold:.2f} s, "
              f"from the warm spare {warm * 1e3:.0f} ms")  # fmt: skip
        digits_t = torch.from_numpy(np.ascontiguousarray(digits))
        for label, spec, path in (
            ("onnx", onnx_spec, onnx_path),
            ("torchscript", ts_spec, ts_path),
        ):
            compare(f"digits logits_for, {label}", spec, path,
                    lambda t: t.logits_for(digits, 256), args.repeats, 1)  # fmt: skip
            compare(f"digits per-batch 64, {label}", spec, path,
                    lambda t: per_batch(t, digits_t, 64), args.repeats, 29)  # fmt: skip
        compare("3x32x32 per-batch 128, resnet8 ts",
                TeacherSpec(source="file:resnet8.pt", format="torchscript"), resnet_path,
                lambda t: per_batch(t, images, 128), args.repeats, 4)  # fmt: skip


if __name__ == "__main__":
    main()
