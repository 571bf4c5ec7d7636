"""Cost of one Annealing-KD Phase-1 epoch relative to one student-only epoch.

CIFAR-shaped data (3x32x32, 10 classes), ResNet-56 teacher, ResNet-8 student, same data and
batch size, all measured in this process and reported as ratios (the machine is shared and
noisy). Three arms through the real trainer:
  student-only  CE on hard labels
  cached        Phase 1 with the teacher logits cache (this project's default)
  per-batch     Phase 1 running the teacher on every batch (the official code's way)
The cache build time (one teacher pass over the training set) is printed separately.

    .venv/bin/python bench/overhead.py [--samples 1024] [--repeats 5] [--device auto] [--no-amp]
        [--compile auto|on|off] [--no-channels-last]

On CUDA the student trains with the job's mixed precision (bf16 from compute capability 8.0,
else fp16 with loss scaling), as a job with the default spec does; --no-amp measures fp32.
--compile sets optimizer.compile (default off: the eager loop; bench/gpu_check.sh runs it both
ways) and --no-channels-last keeps the conv student in NCHW where a job would use NHWC.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from akd_core import trainer as trainer_module
from akd_core.device import amp_dtype_for, inference_batch_size, select_device
from akd_core.events import Hooks
from akd_core.models import build_model, count_params
from akd_core.spec import parse_spec
from akd_core.trainer import ArmTrainer, Progress, TrainData


def _spec(batch_size: int, compile_mode: str = "off"):
    return parse_spec(
        {
            "teacher": {"source": "upload:bench", "format": "onnx"},
            "student": {"arch": "resnet8"},
            "dataset": {"source": "builtin:bench"},
            "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
            "optimizer": {"batch_size": batch_size, "compile": compile_mode},
        }
    )


@torch.no_grad()
def teacher_logits(teacher: torch.nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    """One eval-mode pass of the teacher over x: what the cache stores."""
    return torch.cat([teacher(x[i : i + batch]).float() for i in range(0, len(x), batch)])


def one_epoch(
    arm: str,
    data: TrainData,
    device,
    out: Path,
    batch_size: int,
    amp_dtype=None,
    compile_mode: str = "off",
) -> float:
    """Seconds of one training epoch (the trainer's own timing, validation excluded)."""
    torch.manual_seed(0)
    model = build_model("resnet8", (3, 32, 32), 10)
    spec = _spec(batch_size, compile_mode)
    trainer = ArmTrainer(arm, spec, model, data, device, out, Hooks(), Progress(1),
                         amp_dtype=amp_dtype)  # fmt: skip
    return trainer.run(resume=False).history[0].seconds


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    ap.add_argument("--compile", default="off", choices=["auto", "on", "off"])
    ap.add_argument("--no-channels-last", action="store_true", help="NCHW even under autocast")
    args = ap.parse_args(argv)
    if args.no_channels_last:
        trainer_module.channels_last_for = lambda *_: False  # what ArmTrainer asks
    device = select_device(args.device)
    amp_dtype = amp_dtype_for(device, enabled=not args.no_amp)  # what a job would choose
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (args.samples,), generator=g).to(device)
    xv, yv = x[:256], y[:256]
    teacher = build_model("resnet56", (3, 32, 32), 10).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    infer_batch = inference_batch_size(device)  # what the pipeline uses for the cache
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    teacher_logits(
        teacher, x[:256], infer_batch
    )  # warm the teacher's kernels before timing the cache build
    sync()
    t0 = time.perf_counter()
    cached = teacher_logits(teacher, x, infer_batch)
    sync()
    cache_build = time.perf_counter() - t0

    arms = {
        "student-only": ("student", TrainData(x, y, xv, yv)),
        "cached": ("annealing", TrainData(x, y, xv, yv, teacher_train=cached)),
        "per-batch": (
            "annealing",
            TrainData(x, y, xv, yv, teacher_fn=lambda xb: teacher_logits(teacher, xb, len(xb))),
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warmup"
        run = (args.batch_size, amp_dtype, args.compile)
        one_epoch("student", arms["student-only"][1], device, warm, *run)
        for r in range(args.repeats):  # interleaved so drift in machine load hits every arm
            for name, (arm, data) in arms.items():
                out = Path(tmp) / f"{name}{r}"
                times[name].append(one_epoch(arm, data, device, out, *run))
    device_name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    )
    print(
        f"device: {device_name}; {args.samples} CIFAR-shaped samples, batch {args.batch_size}, "
        f"teacher resnet56 ({count_params(teacher):,} params) -> student resnet8, "
        f"{args.repeats} interleaved repeats, student precision "
        f"{str(amp_dtype).removeprefix('torch.') if amp_dtype else 'fp32'}, "
        f"compile {args.compile}, channels_last {'off' if args.no_channels_last else 'auto'}"
    )
    print("| epoch | best (s) | median (s) | ratio of best | ratio of medians |")
    print("|---|---|---|---|---|")
    base_best, base_med = min(times["student-only"]), statistics.median(times["student-only"])
    for name, v in times.items():
        b, m = min(v), statistics.median(v)
        print(f"| {name} | {b:.3f} | {m:.3f} | {b / base_best:.3f} | {m / base_med:.3f} |")
    print(
        f"cache build (one teacher pass over {args.samples} samples): {cache_build:.3f} s "
        f"= {cache_build / base_med:.2f} student-only epochs"
    )
    if device.type == "cuda":
        print(f"peak device memory: {torch.cuda.max_memory_allocated(device) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
