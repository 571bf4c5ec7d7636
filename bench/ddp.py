"""One training epoch on N data-parallel processes (DDP) against one process, same data.

CIFAR-shaped random data (3x32x32, 10 classes), ResNet-8 student-only arm, the same global
batch; the single-process epoch and the N-process one run in this process's session, in
turns, so drift in machine load hits both. Two figures per run: the epoch as the trainer
times it (rank 0's, after the processes started) and the wall time of the whole arm
(process start, group set-up, torch import in each rank included).

    .venv/bin/python bench/ddp.py [--samples 2048] [--devices 2] [--repeats 3] [--device cpu]
                                  [--augment crop-flip]

--augment crop-flip draws the random crops and flips of each global batch on every rank and
applies each rank's own rows (as a job with dataset.augment crop-flip does).

On CPU the ranks are gloo processes that share the machine's cores (each gets
cores / N threads); on a GPU host, --device cuda puts rank r on cuda:r with NCCL.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from akd_core.data.augment import crop_flip
from akd_core.distributed import ParallelArm, train_arm_parallel
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.spec import parse_spec
from akd_core.trainer import ArmTrainer, Progress, TrainData


def _spec(batch_size: int, augment: str = "none"):
    return parse_spec(
        {
            "teacher": {"source": "upload:bench", "format": "onnx"},
            "student": {"arch": "resnet8"},
            "dataset": {"source": "builtin:bench", "augment": augment},
            "method": "student",
            "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
            "optimizer": {"batch_size": batch_size, "compile": "off"},
        }
    )


def _student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet8", (3, 32, 32), 10)


def run_once(
    data: TrainData, devices: int, device: torch.device, out: Path, batch: int, augment: str
):
    """(epoch seconds as the trainer timed it, wall seconds of the arm) for one run."""
    t0 = time.perf_counter()
    spec = _spec(batch, augment)
    if devices == 1:
        result = ArmTrainer("student", spec, _student(), data, device, out, Hooks(),
                            Progress(1)).run(resume=False)  # fmt: skip
    else:
        job = ParallelArm("student", spec, _student(), data, device.type, out,
                          Progress(1), None, "", False)  # fmt: skip
        result = train_arm_parallel(job, devices, Hooks())
    return result.history[0].seconds, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--augment", default="none", choices=["none", "crop-flip"])
    args = ap.parse_args(argv)
    aug = crop_flip if args.augment == "crop-flip" else None
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.samples,), generator=g)
    data = TrainData(x, y, x[:256], y[:256], augment=aug)
    if device.type == "cuda":  # the single process gets its data on the GPU, as a job does
        on = [t.to(device) for t in (x, y, x[:256], y[:256])]
        single = TrainData(*on, augment=aug)
    else:
        single = data
    threads = torch.get_num_threads()
    # (processes, threads per process): one process with all threads, one with the share a
    # rank gets (the ranks split the cores), and the data-parallel run.
    shares = max(1, threads // args.devices)
    modes = [(1, threads), (1, shares), (args.devices, shares)]
    runs: dict[tuple[int, int], list[tuple[float, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n, t in modes:
                torch.set_num_threads(t if n == 1 else threads)  # ranks set their own share
                src = single if n == 1 else data
                out = Path(tmp) / f"{n}-{t}-{r}"
                runs[(n, t)].append(run_once(src, n, device, out, args.batch_size, args.augment))
        torch.set_num_threads(threads)
    print(
        f"{args.samples} CIFAR-shaped samples, resnet8 student-only, augment {args.augment}, "
        f"global batch "
        f"{args.batch_size}, device {args.device}, {args.repeats} alternating repeats, "
        f"{threads} CPU threads"
    )
    print("| processes x threads | epoch best / median (s) | arm wall best / median (s) | "
          "epoch speed-up |")  # fmt: skip
    print("|---|---|---|---|")
    base = statistics.median(e for e, _ in runs[modes[0]])
    for (n, t), v in runs.items():
        epochs, walls = [e for e, _ in v], [w for _, w in v]
        print(
            f"| {n} x {t} | {min(epochs):.2f} / {statistics.median(epochs):.2f} | "
            f"{min(walls):.2f} / {statistics.median(walls):.2f} | "
            f"{base / statistics.median(epochs):.2f} |"
        )


if __name__ == "__main__":
    main()
