"""A real report.json from akd_core.report.write_outputs, without a training run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from akd_core.data import Dataset, load_dataset
from akd_core.models import build_model
from akd_core.report import ArmSummary, RunFacts, write_outputs
from akd_core.spec import JobSpec, parse_spec

# What the trainer records for an annealing run of 2 + 1 epochs at tau_max 2.
HISTORY: list[dict[str, Any]] = [
    {"phase": 1, "epoch": 1, "T": 2, "phi": 0.5, "train_loss": 1.4, "val_accuracy": 0.5,
     "lr": 0.005, "seconds": 0.02},
    {"phase": 1, "epoch": 2, "T": 1, "phi": 1.0, "train_loss": 1.1, "val_accuracy": 0.6,
     "lr": 0.0, "seconds": 0.02},
    {"phase": 2, "epoch": 1, "T": None, "phi": None, "train_loss": 0.9, "val_accuracy": 0.7,
     "lr": 0.0, "seconds": 0.02},
]  # fmt: skip


def write_report(out_dir: Path, **export: Any) -> dict[str, Any]:
    """Export an untrained MLP student on builtin:digits with `export` options; report.json's dict."""
    spec = parse_spec({
        "teacher": {"source": "upload:0123abcd", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        "compare": ["student"],
        "export": export,
    })  # fmt: skip
    ds = load_dataset(spec.dataset, None, spec.seed)
    torch.manual_seed(0)
    student = build_model("mlp", ds.input_shape, ds.num_classes)
    return write_with_facts(out_dir, spec, ds, student, ("annealing", "student"))


def write_with_facts(
    out_dir: Path, spec: JobSpec, ds: Dataset, model: torch.nn.Module, arms: tuple[str, ...]
) -> dict[str, Any]:
    """write_outputs for `model` with fixed run facts and the same summary for each of `arms`."""
    facts = RunFacts(
        spec=spec, dataset=ds, device="cpu", amp=None, cache_seconds=0.1, cache_hit=False,
        teacher={"format": "onnx", "fingerprint": "ab" * 32, "params": 23950, "size_bytes": 113504},
        teacher_val_accuracy=0.99, teacher_test_accuracy=0.98, started=time.perf_counter(),
    )  # fmt: skip
    arm = ArmSummary(accuracy=0.7, val_accuracy=0.7, best_phase=2, best_epoch=1,
                     train_seconds=0.06, history=HISTORY)  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_outputs(out_dir, facts, model, dict.fromkeys(arms, arm))
