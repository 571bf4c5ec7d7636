"""Choose `make demo`'s task: student-only vs KD vs Annealing-KD per candidate, on VALIDATION.

builtin:digits. Per seed a reference teacher (akd_tools.demo_task: TEACHER_ARCH for
TEACHER_EPOCHS epochs) is trained on that seed's whole training split, the split every job of
that seed uses too (the teacher never sees the validation or test split). Each candidate
patches akd_tools.demo_task.BASE_SPEC (e.g. fewer labelled samples with
dataset.max_train_samples, a smaller student, another schedule); one job per seed trains the
three arms with the same epoch budget, data, teacher and initial weights.

Selection rule, on the validation split only: the candidate whose mean Annealing-KD validation
accuracy beats the better baseline's by the most. Test accuracy is printed to check that the
gain holds there; it plays no part in the choice.

    nice -n 19 .venv/bin/python bench/demo_select.py [--seeds 3] [--round 1|2|3] [--demo] [--first-seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from akd_core.pipeline import run_job
from akd_core.reference_teacher import make_reference_teacher
from akd_core.spec import parse_spec
from akd_tools.demo_results import METHODS, collect, pm
from akd_tools.demo_task import DEMO_PATCH, TEACHER_ARCH, TEACHER_EPOCHS, job_spec


def _few(
    labels: int, arch: str, tau: int, e1: int, e2: int, batch: int, **student: Any
) -> dict[str, Any]:
    """A patch: `labels` labelled training images, student `arch`, schedule, batch size."""
    return {
        "dataset": {"max_train_samples": labels},
        "student": {"arch": arch, "options": student},
        "annealing": {"tau_max": tau, "phase1_epochs": e1, "phase2_epochs": e2},
        "optimizer": {"batch_size": batch},
    }


# Round 1: where does a small student gain at all? Rounds 2 and 3: around the best so far
# on validation (more steps per epoch, longer schedules, a wider student, more labels).
ROUNDS: dict[int, dict[str, dict[str, Any]]] = {
    1: {
        "all 1293 labels, cnn-tiny, tau 5, E1 30 / E2 15, batch 64 (old demo)": {},
        "200 labels, cnn-tiny, tau 5, E1 30 / E2 15, batch 32": _few(
            200, "cnn-tiny", 5, 30, 15, 32
        ),
        "100 labels, cnn-tiny, tau 5, E1 30 / E2 15, batch 32": _few(
            100, "cnn-tiny", 5, 30, 15, 32
        ),
        "50 labels, cnn-tiny, tau 5, E1 30 / E2 15, batch 32": _few(50, "cnn-tiny", 5, 30, 15, 32),
        "100 labels, cnn-tiny, tau 10, E1 60 / E2 20, batch 32": _few(
            100, "cnn-tiny", 10, 60, 20, 32
        ),
        "100 labels, mlp [32], tau 5, E1 30 / E2 15, batch 32": _few(
            100, "mlp", 5, 30, 15, 32, hidden=[32]
        ),
        "all labels, mlp [16], tau 5, E1 30 / E2 15, batch 64": {
            "student": {"arch": "mlp", "options": {"hidden": [16]}},
        },
    },
    2: {
        "50 labels, cnn-tiny, tau 5, E1 60 / E2 15, batch 16": _few(50, "cnn-tiny", 5, 60, 15, 16),
        "50 labels, cnn-tiny, tau 10, E1 60 / E2 20, batch 16": _few(
            50, "cnn-tiny", 10, 60, 20, 16
        ),
        "50 labels, mlp [32], tau 5, E1 30 / E2 15, batch 16": _few(
            50, "mlp", 5, 30, 15, 16, hidden=[32]
        ),
    },
    3: {
        "50 labels, cnn-tiny, tau 5, E1 100 / E2 20, batch 16": _few(
            50, "cnn-tiny", 5, 100, 20, 16
        ),
        "50 labels, cnn-tiny width 16, tau 5, E1 60 / E2 15, batch 16": _few(
            50, "cnn-tiny", 5, 60, 15, 16, width=16
        ),
        "100 labels, cnn-tiny, tau 5, E1 60 / E2 15, batch 16": _few(
            100, "cnn-tiny", 5, 60, 15, 16
        ),
    },
}
CANDIDATES = {name: patch for rnd in ROUNDS.values() for name, patch in rnd.items()}


def _gap(val: dict[str, list[float]]) -> float:
    """Mean annealing validation accuracy minus the better baseline's mean."""
    best_baseline = max(statistics.fmean(v) for m, v in val.items() if m != "annealing")
    return statistics.fmean(val["annealing"]) - best_baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--round", type=int, choices=sorted(ROUNDS), help="one round (default all)")
    ap.add_argument("--demo", action="store_true", help="only the demo's setting (DEMO_PATCH)")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the machine is shared: one core each
    names = list(ROUNDS[args.round] if args.round else CANDIDATES)
    if args.demo:
        names = [n for n in CANDIDATES if CANDIDATES[n] == DEMO_PATCH]
    reports: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            teacher, acc = make_reference_teacher(
                Path(tmp) / f"t{seed}.onnx", arch=TEACHER_ARCH, epochs=TEACHER_EPOCHS, seed=seed
            )
            print(f"seed {seed}: teacher test accuracy {acc:.4f}", flush=True)
            for i, name in enumerate(names):
                spec = parse_spec(job_spec(f"file:{teacher}", seed, CANDIDATES[name]))
                t0 = time.perf_counter()
                report = run_job(spec, Path(tmp) / f"s{seed}c{i}")
                seconds[name].append(time.perf_counter() - t0)
                reports[name].append(report)
                test = collect([report])
                print(f"  {name}: " + ", ".join(f"{m} {test[m][0]:.4f}" for m in METHODS))
    print(f"\n{args.seeds} seeds, {time.perf_counter() - started:.0f} s; accuracy in %, mean ± std")
    print("| candidate | split | " + " | ".join(METHODS) + " | annealing - best baseline | job s |")
    print("|---|---|" + "---|" * (len(METHODS) + 2))
    gaps: dict[str, float] = {}
    for name in names:
        mark = " (demo)" if CANDIDATES[name] == DEMO_PATCH else ""
        for split, key in (("val", "val_accuracy"), ("test", "accuracy")):
            split_acc = collect(reports[name], key)
            gap = _gap(split_acc)
            if split == "val":
                gaps[name] = gap
            cells = " | ".join(pm(split_acc[m]) for m in METHODS)
            secs = f"{statistics.fmean(seconds[name]):.1f}" if split == "val" else ""
            print(f"| {name}{mark} | {split} | {cells} | {100 * gap:+.2f} | {secs} |")
    chosen = max(gaps, key=lambda n: gaps[n])
    print(f"\nselected on validation: {chosen} ({100 * gaps[chosen]:+.2f} points over the "
          "better baseline)")  # fmt: skip


if __name__ == "__main__":
    main()
