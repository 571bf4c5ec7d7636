"""One training epoch on N data-parallel processes (DDP) against one process, same data.

Two workloads, the same global batch in every run, student-only arm:
- images (default): CIFAR-shaped random data (3x32x32, 10 classes; --channels 1 for
  grayscale), ResNet-8;
- --data text: random token sequences (--samples of length --length, vocabulary --vocab,
  2 classes; each row's attention mask covers 8 to --length tokens), a small `bert` student
  (2 layers, hidden 128, 2 heads, intermediate 512, dropout 0.1), AdamW as a text job's.
The single-process epochs and the N-process one run in this process's session, in turns, so
drift in machine load hits all of them. Two figures per run: the epoch as the trainer times
it (rank 0's, after the processes started) and the wall time of the whole arm (process
start, group set-up, torch import in each rank included).

    .venv/bin/python bench/ddp.py [--samples 2048] [--devices 2] [--repeats 3] [--device cpu]
                                  [--augment crop-flip] [--channels 3] [--data images|text]

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from akd_core.data.augment import crop_flip
from akd_core.distributed import ParallelArm, train_arm_parallel
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.spec import parse_spec
from akd_core.trainer import ArmTrainer, Progress, TrainData

TEXT_BERT = {"layers": 2, "hidden": 128, "heads": 2, "intermediate": 512}


@dataclass(frozen=True)
class Workload:
    """What one benchmark trains: its data, a fresh seeded student, and the spec's fields."""

    title: str
    data: TrainData
    student: Callable[[], torch.nn.Module]
    fields: dict[str, Any]  # student, dataset and optimizer fields of the spec


def _spec(w: Workload, batch_size: int):
    return parse_spec(
        {
            "teacher": {"source": "upload:bench", "format": "onnx"},
            "method": "student",
            "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
            **w.fields,
            "optimizer": {"batch_size": batch_size, "compile": "off", **w.fields["optimizer"]},
        }
    )


def images(args: argparse.Namespace) -> Workload:
    """CIFAR-shaped random images and a ResNet-8 student."""
    g = torch.Generator().manual_seed(0)
    shape = (args.channels, 32, 32)
    x = torch.randn(args.samples, *shape, generator=g)
    y = torch.randint(0, 10, (args.samples,), generator=g)
    aug = crop_flip if args.augment == "crop-flip" else None

    def student() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model("resnet8", shape, 10)

    title = f"{args.samples} CIFAR-shaped samples ({args.channels} channels), resnet8"
    fields = {"student": {"arch": "resnet8"}, "optimizer": {},
              "dataset": {"source": "builtin:bench", "augment": args.augment}}  # fmt: skip
    return Workload(title, TrainData(x, y, x[:256], y[:256], augment=aug), student, fields)


def text(args: argparse.Namespace) -> Workload:
    """Random token sequences (input_ids, attention_mask) and a small `bert` student."""
    from akd_core.text.hf_folder import HfFolder
    from akd_core.text.students import build_text_student

    g = torch.Generator().manual_seed(0)
    n, length = args.samples, args.length
    ids = torch.randint(1, args.vocab, (n, length), generator=g)  # 0 is the pad id
    lengths = torch.randint(8, length + 1, (n, 1), generator=g)
    mask = (torch.arange(length) < lengths).long()
    x = torch.stack([ids * mask, mask], dim=1)  # (N, 2, L): the trainer's token batches
    y = torch.randint(0, 2, (n,), generator=g)
    config = {"vocab_size": args.vocab, "max_position_embeddings": length}
    folder = HfFolder(Path("unused"), config, "", 0)  # only its config is read

    def student() -> torch.nn.Module:
        torch.manual_seed(0)
        return build_text_student("bert", TEXT_BERT, folder, ["a", "b"], 0, False, length)

    title = (f"{n} token sequences of length {length} (vocabulary {args.vocab}), bert "
             + " ".join(f"{k} {v}" for k, v in TEXT_BERT.items()))  # fmt: skip
    fields = {"student": {"arch": "bert", "options": TEXT_BERT},
              "dataset": {"source": "builtin:bench"},
              "optimizer": {"name": "adamw", "lr": 1e-4}}  # fmt: skip
    return Workload(title, TrainData(x, y, x[:256], y[:256]), student, fields)


def run_once(w: Workload, data: TrainData, devices: int, device: torch.device, out: Path,
             batch: int) -> tuple[float, float]:  # fmt: skip
    """(epoch seconds as the trainer timed it, wall seconds of the arm) for one run."""
    t0 = time.perf_counter()
    spec = _spec(w, batch)
    if devices == 1:
        result = ArmTrainer("student", spec, w.student(), data, device, out, Hooks(),
                            Progress(1)).run(resume=False)  # fmt: skip
    else:
        job = ParallelArm("student", spec, w.student(), data, device.type, out,
                          Progress(1), None, "", False)  # fmt: skip
        result = train_arm_parallel(job, devices, Hooks())
    return result.history[0].seconds, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default="images", choices=["images", "text"])
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=None, help="default: 128 images, 32 text")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--augment", default="none", choices=["none", "crop-flip"])
    ap.add_argument("--channels", type=int, default=3, help="images: 3 (RGB) or 1 (grayscale)")
    ap.add_argument("--length", type=int, default=64, help="text: tokens per sequence")
    ap.add_argument("--vocab", type=int, default=1000, help="text: vocabulary size")
    args = ap.parse_args(argv)
    w = text(args) if args.data == "text" else images(args)
    batch = args.batch_size or (32 if args.data == "text" else 128)
    device = torch.device(args.device)
    data = w.data
    if device.type == "cuda":  # the single process gets its data on the GPU, as a job does
        d = data
        single = replace(d, x_train=d.x_train.to(device), y_train=d.y_train.to(device),
                         x_val=d.x_val.to(device), y_val=d.y_val.to(device))  # fmt: skip
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
                out = Path(tmp) / f"{n}-{t}-{r}"
                runs[(n, t)].append(run_once(w, single if n == 1 else data, n, device, out, batch))
        torch.set_num_threads(threads)
    print(
        f"{w.title}, student-only, augment {args.augment}, global batch {batch}, device "
        f"{args.device}, {args.repeats} alternating repeats, {threads} CPU threads"
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
