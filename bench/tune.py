"""How the spec defaults were chosen: validation accuracy of each method under candidate settings.

builtin:digits, the same teachers and students as bench/accuracy.py, the same 45-epoch budget
for every arm. Only the VALIDATION split (carved from the training data) is read here; the test
split is left for bench/accuracy.py. Prints mean validation accuracy per setting and method.

    .venv/bin/python bench/tune.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from akd_core.pipeline import run_job
from akd_core.reference_teacher import make_reference_teacher
from akd_core.spec import parse_spec

METHODS = ("student", "kd", "annealing")
# name -> spec patch; the first one is the shipped default.
CANDIDATES: dict[str, dict[str, Any]] = {
    "adamw 1e-2 cosine (default), tau 5, E1 30 / E2 15": {},
    "adamw 3e-3 cosine": {"optimizer": {"name": "adamw", "lr": 3e-3}},
    "adamw 1e-3 cosine": {"optimizer": {"name": "adamw", "lr": 1e-3}},
    "adamw 3e-2 cosine": {"optimizer": {"name": "adamw", "lr": 3e-2}},
    "sgd 0.1 step (paper recipe)": {"optimizer": {"name": "sgd"}},
    "sgd 0.05 cosine": {"optimizer": {"name": "sgd", "lr": 0.05, "schedule": "cosine"}},
    "tau 5, E1 20 / E2 25": {"annealing": {"tau_max": 5, "phase1_epochs": 20, "phase2_epochs": 25}},
    "tau 10, E1 30 / E2 15": {
        "annealing": {"tau_max": 10, "phase1_epochs": 30, "phase2_epochs": 15}
    },
}


def _spec(teacher: Path, seed: int, patch: dict[str, Any]):
    base: dict[str, Any] = {
        "teacher": {"source": f"file:{teacher}"},
        "student": {"arch": "cnn-tiny"},
        "dataset": {"source": "builtin:digits"},
        "compare": ["student", "kd"],
        "annealing": {"tau_max": 5, "phase1_epochs": 30, "phase2_epochs": 15},
        "seed": seed,
    }
    optimizer = {"batch_size": 64, **patch.get("optimizer", {})}
    return parse_spec({**base, **patch, "optimizer": optimizer})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    val: dict[str, dict[str, list[float]]] = {c: {m: [] for m in METHODS} for c in CANDIDATES}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            teacher, _ = make_reference_teacher(
                Path(tmp) / f"t{seed}.onnx", arch="cnn", options={"width": 19}, seed=seed
            )
            for i, (name, patch) in enumerate(CANDIDATES.items()):
                report = run_job(_spec(teacher, seed, patch), Path(tmp) / f"s{seed}c{i}")
                for m in METHODS:
                    arm = report["student"] if m == "annealing" else report["baselines"][m]
                    val[name][m].append(arm["val_accuracy"])
            print(f"seed {seed} done", flush=True)
    print(f"\nmean validation accuracy over {args.seeds} seeds (cnn-tiny student, 45 epochs)")
    print("| setting | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for name in CANDIDATES:
        cells = [f"{statistics.mean(val[name][m]):.4f}" for m in METHODS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
