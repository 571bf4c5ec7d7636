"""GPU-path checks of the real trainer: exact resume per precision, pinned vs resident data.

  resume  trains an annealing arm uninterrupted and again stopped mid-phase then resumed
          (deterministic mode on), in each precision asked for; prints whether the
          parameters, history and loss scale match, and the largest parameter difference.
  pinned  times one epoch with the training split resident on the device and the same
          split in pinned host memory, copied per batch (what a split over
          akd_core.device.GPU_RESIDENT_BYTES gets).
  distill a short `akd distill` (python -m akd_core.cli) of a digits teacher trained here,
          with mixed precision and INT8 export; prints what its report.json says.
  kernels ms per forward + backward step of the student at the job's AMP dtype: eager in
          NCHW, eager in channels_last, and torch.compile'd (what optimizer.compile "auto"
          times), each with the seconds its warm-up (the compile) took.
Each prints the peak device memory (torch.cuda.max_memory_allocated) on CUDA.

    .venv/bin/python bench/gpu_paths.py resume [--device cuda] [--precisions bf16,fp16,fp32]
    .venv/bin/python bench/gpu_paths.py pinned [--device cuda] [--samples 16384]
    .venv/bin/python bench/gpu_paths.py distill --out DIR [--device cuda] [--epochs 4]
    .venv/bin/python bench/gpu_paths.py kernels [--device cuda] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from akd_core.compile_forward import time_steps
from akd_core.device import amp_dtype_for, select_device, set_deterministic
from akd_core.errors import JobCancelled
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.spec import parse_spec
from akd_core.trainer import ArmTrainer, Progress, TrainData

PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def _spec(batch_size: int, epochs: int):
    return parse_spec(
        {
            "teacher": {"source": "upload:bench", "format": "onnx"},
            "student": {"arch": "resnet8"},
            "dataset": {"source": "builtin:bench"},
            "annealing": {"tau_max": epochs, "phase1_epochs": epochs, "phase2_epochs": 1},
            "optimizer": {"batch_size": batch_size},
            "deterministic": True,
        }
    )


def _data(samples: int, device: torch.device, pinned: bool = False) -> TrainData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (samples,), generator=g)
    logits = torch.randn(samples, 10, generator=g)
    if pinned and device.type == "cuda":  # host memory, copied per batch by the trainer
        x, y, logits = x.pin_memory(), y.pin_memory(), logits.pin_memory()
    else:
        x, y, logits = x.to(device), y.to(device), logits.to(device)
    return TrainData(x, y, x[:256], y[:256], teacher_train=logits)


class _StopAfter:
    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


ARCH = {"name": "resnet8"}  # --arch: mlp keeps the CPU test of this script fast


def _trainer(out: Path, dtype, device, data, hooks, epochs: int, batch: int) -> ArmTrainer:
    torch.manual_seed(0)
    model = build_model(ARCH["name"], (3, 32, 32), 10)
    return ArmTrainer("annealing", _spec(batch, epochs), model, data, device, out, hooks,
                      Progress(epochs + 1), amp_dtype=dtype, run_key="bench")  # fmt: skip


def resume_check(device: torch.device, name: str, samples: int, batch: int) -> bool:
    """True when a stopped-and-resumed run ends exactly like the uninterrupted one."""
    dtype = PRECISIONS[name] if device.type == "cuda" else None
    data, epochs = _data(samples, device), 2
    steps = -(-samples // batch)
    with tempfile.TemporaryDirectory() as tmp:
        ref = _trainer(Path(tmp, "ref"), dtype, device, data, Hooks(), epochs, batch)
        reference = ref.run(resume=False)
        stop = Hooks(should_cancel=_StopAfter(steps + steps // 2 + 1))  # mid epoch 2
        try:
            _trainer(Path(tmp, "cut"), dtype, device, data, stop, epochs, batch).run(False)
        except JobCancelled:
            pass  # stopped mid epoch 2, as intended
        else:
            print(f"resume {name}: the run ended before the stop; give more --samples")
            return False
        again = _trainer(Path(tmp, "cut"), dtype, device, data, Hooks(), epochs, batch)
        resumed = again.run(resume=True)
    diff = max(
        float((reference.best_state[k].float() - resumed.best_state[k].float()).abs().max())
        for k in reference.best_state
    )
    same_history = [r.train_loss for r in reference.history] == [
        r.train_loss for r in resumed.history
    ]
    same_scale = (
        ref.scaler.get_scale() == again.scaler.get_scale() if ref.scaler.is_enabled() else True
    )
    exact = diff == 0.0 and same_history and same_scale
    print(f"resume {name:<4} on {device}: {'EXACT' if exact else 'DIFFERS'}; max |param diff| "
          f"{diff:.3g}, history equal {same_history}, loss scale equal {same_scale}")  # fmt: skip
    return exact


def pinned_check(device: torch.device, samples: int, batch: int) -> dict[str, float]:
    """Seconds of one epoch with the split resident vs pinned (best of 3 each, interleaved)."""
    times: dict[str, list[float]] = {"resident": [], "pinned": []}
    datasets = {"resident": _data(samples, device), "pinned": _data(samples, device, True)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(4):  # the first round warms the kernels and is dropped
            for name, data in datasets.items():
                t = _trainer(Path(tmp, f"{name}{r}"), None, device, data, Hooks(), 1, batch)
                seconds = t.run(resume=False).history[0].seconds
                if r:
                    times[name].append(seconds)
    best = {name: min(v) for name, v in times.items()}
    print(f"epoch of {samples} samples, batch {batch} on {device}: resident "
          f"{best['resident']:.3f} s, pinned {best['pinned']:.3f} s "
          f"(pinned / resident {best['pinned'] / best['resident']:.2f})")  # fmt: skip
    return best


def distill_check(device: torch.device, out: Path, epochs: int, teacher_epochs: int) -> bool:
    """Run `akd distill` on `device` with AMP and INT8; True when it wrote both students."""
    from akd_core.reference_teacher import make_reference_teacher

    out.mkdir(parents=True, exist_ok=True)
    _, teacher_acc = make_reference_teacher(out / "teacher.onnx", arch="cnn-small",
                                            epochs=teacher_epochs)  # fmt: skip
    spec = {
        "teacher": {"source": f"file:{out / 'teacher.onnx'}"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        "device": device.type,
        "mixed_precision": True,
        "annealing": {"tau_max": epochs, "phase1_epochs": epochs, "phase2_epochs": 1},
        "export": {"int8": True, "int8_max_accuracy_drop": 1.0},  # the file, whatever its drop
    }
    (out / "spec.json").write_text(json.dumps(spec))
    job = out / "job"
    cmd = [sys.executable, "-m", "akd_core.cli", str(out / "spec.json"), "--out", str(job)]
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        print(f"akd distill failed (exit {done.returncode})")
        return False
    report = json.loads((job / "report.json").read_text())
    int8 = (job / "student.int8.onnx").exists()
    print(f"akd distill on {report['device']}, mixed precision {report['mixed_precision']}: "
          f"teacher {report['teacher']['accuracy']:.4f} (trained here: {teacher_acc:.4f}), "
          f"student {report['student']['accuracy']:.4f}, student.int8.onnx written {int8}, "
          f"train {sum(report['timings']['train_s'].values()):.1f} s")  # fmt: skip
    return int8 and (job / "student.onnx").exists()


def kernels_check(device: torch.device, batch: int) -> dict[str, float]:
    """ms per forward + backward step: eager NCHW, eager channels_last, compiled (NHWC)."""
    dtype = amp_dtype_for(device, True)
    print(f"{ARCH['name']}, batch {batch}, AMP {str(dtype).removeprefix('torch.')}")

    def amp():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    x = torch.randn(batch, 3, 32, 32, device=device)
    figures = {}
    for name, nhwc, compiled in [("eager NCHW", False, False), ("eager channels_last", True, False),
                                 ("compiled channels_last", True, True)]:  # fmt: skip
        torch.manual_seed(0)
        model = build_model(ARCH["name"], (3, 32, 32), 10).to(device).train()
        if nhwc:
            model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if compiled else model
        t0 = time.perf_counter()
        figures[name] = ms = time_steps(model, forward, x, device, amp, steps=20)
        print(f"{name}: {ms:.3f} ms/step (with warm-up: {time.perf_counter() - t0:.1f} s)")
    return figures


def peak_memory_line(device: torch.device) -> str:
    """The peak device memory of this process, as a line to print."""
    if device.type != "cuda":
        return "peak device memory: n/a on CPU"
    return f"peak device memory: {torch.cuda.max_memory_allocated(device) / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("check", choices=["resume", "pinned", "distill", "kernels"])
    ap.add_argument("--out", type=Path, help="distill: the output folder")
    ap.add_argument("--epochs", type=int, default=4, help="distill: Phase-1 epochs")
    ap.add_argument("--teacher-epochs", type=int, default=5, help="distill: teacher epochs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--precisions", default="bf16,fp16,fp32")
    ap.add_argument("--arch", default="resnet8", help="student (default resnet8)")
    args = ap.parse_args(argv)
    ARCH["name"] = args.arch
    device = select_device(args.device)
    ok = True
    if args.check == "resume":
        set_deterministic(True)
        for name in args.precisions.split(","):
            if name not in PRECISIONS:
                ap.error(f"--precisions: unknown {name!r}; choose from {', '.join(PRECISIONS)}")
            ok = resume_check(device, name, args.samples or 1024, args.batch_size) and ok
        set_deterministic(False)
    elif args.check == "pinned":
        pinned_check(device, args.samples or 16384, args.batch_size)
    elif args.check == "kernels":
        kernels_check(device, args.batch_size)
    else:
        if args.out is None:
            ap.error("distill needs --out DIR")
        ok = distill_check(device, args.out, args.epochs, args.teacher_epochs)
    print(peak_memory_line(device))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
