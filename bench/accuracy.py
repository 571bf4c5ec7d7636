"""Student-only vs Hinton KD vs Annealing-KD on builtin:digits, over several seeds.

A teacher of about 100k parameters is trained per seed on that seed's training split (the job
uses the same split, so the teacher never sees the test split); a student under 5k parameters
is then trained by each method with the same epoch budget, data and teacher, in one job.
Prints mean and spread of test accuracy per method, and the per-seed figures.

    .venv/bin/python bench/accuracy.py [--seeds 5] [--student cnn-tiny] [--teacher cnn]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from akd_core.pipeline import run_job
from akd_core.reference_teacher import make_reference_teacher
from akd_core.spec import parse_spec

METHODS = ("student", "kd", "annealing")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--teacher", default="cnn")
    ap.add_argument("--teacher-width", type=int, default=19, help="19: about 100k parameters")
    ap.add_argument("--student", default="cnn-tiny")
    ap.add_argument("--tau-max", type=int, default=5)
    ap.add_argument("--phase1-epochs", type=int, default=30)
    ap.add_argument("--phase2-epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    acc: dict[str, list[float]] = {m: [] for m in (*METHODS, "teacher")}
    val: dict[str, list[float]] = {m: [] for m in METHODS}  # what defaults are tuned on
    params: dict[str, int] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            teacher, _ = make_reference_teacher(
                Path(tmp) / f"teacher{seed}.onnx",
                arch=args.teacher,
                options={"width": args.teacher_width},
                epochs=30,
                seed=seed,
            )
            spec = parse_spec(
                {
                    "teacher": {"source": f"file:{teacher}"},
                    "student": {"arch": args.student},
                    "dataset": {"source": "builtin:digits"},
                    "method": "annealing",
                    "compare": ["student", "kd"],
                    "annealing": {
                        "tau_max": args.tau_max,
                        "phase1_epochs": args.phase1_epochs,
                        "phase2_epochs": args.phase2_epochs,
                    },
                    "optimizer": {"name": args.optimizer, "batch_size": args.batch_size},
                    "seed": seed,
                }
            )
            report = run_job(spec, Path(tmp) / f"run{seed}")
            acc["teacher"].append(report["teacher"]["accuracy"])
            for m in METHODS:
                arm = report["student"] if m == "annealing" else report["baselines"][m]
                acc[m].append(arm["accuracy"])
                val[m].append(arm["val_accuracy"])
            params = report["params"]
            print(
                f"seed {seed}: teacher {acc['teacher'][-1]:.4f}  "
                + "  ".join(f"{m} {acc[m][-1]:.4f}" for m in METHODS),
                flush=True,
            )
    budget = args.phase1_epochs + args.phase2_epochs
    print(
        f"\nbuiltin:digits, teacher {args.teacher} ({params['teacher']:,} params), student "
        f"{args.student} ({params['student']:,} params), {budget} epochs per method, "
        f"tau_max {args.tau_max}, E1 {args.phase1_epochs}, E2 {args.phase2_epochs}, "
        f"optimizer {args.optimizer}, batch {args.batch_size}, "
        f"{args.seeds} seeds, {time.perf_counter() - started:.0f} s"
    )
    print("| method | mean test accuracy | std | min | max | mean val accuracy |")
    print("|---|---|---|---|---|---|")
    for m in ("teacher", *METHODS):
        v = acc[m]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        mv = f"{statistics.mean(val[m]):.4f}" if m in val else "-"
        print(f"| {m} | {statistics.mean(v):.4f} | {sd:.4f} | {min(v):.4f} | {max(v):.4f} | {mv} |")


if __name__ == "__main__":
    main()
