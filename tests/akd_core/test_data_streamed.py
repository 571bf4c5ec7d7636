"""Streamed data: a job read batch by batch from the data cache gives the resident job's results."""

from __future__ import annotations

import json

import pytest

from akd_core.limits import Limits
from akd_core.pipeline import run_job
from akd_core.spec import parse_spec

pytestmark = pytest.mark.slow


def _spec(teacher, **over):
    base = {
        "teacher": {"source": f"file:{teacher}"},
        "student": {"arch": "mlp", "options": {"hidden": [32]}},
        "dataset": {"source": "builtin:digits", "normalize": "train-mean-std"},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
        "optimizer": {"batch_size": 128},
        "compare": ["kd", "student"],
        "export": {"int8": False},
    }
    base.update(over)
    return parse_spec(base)


def _figures(report):
    """What a user compares between two runs: accuracies, losses, ONNX checks."""
    return {
        "student": report["student"]["accuracy"],
        "baselines": {k: v["accuracy"] for k, v in report["baselines"].items()},
        "teacher": report["teacher"]["accuracy"],
        "history": [(h["train_loss"], h["val_accuracy"]) for h in report["history"]],
        "onnx": (report["onnx"]["accuracy"], report["onnx"]["argmax_agreement"]),
        "input_contract": report["input_contract"],
        "preprocessing": report["preprocessing"],
    }


def test_a_streamed_job_reports_what_the_resident_job_reports(digits_teacher, tmp_path):
    cache = tmp_path / "cache"
    resident = run_job(_spec(digits_teacher), tmp_path / "resident", cache_dir=cache)
    streamed = run_job(
        _spec(digits_teacher), tmp_path / "streamed", cache_dir=cache,
        limits=Limits(resident_data_bytes=0),
    )  # fmt: skip
    assert resident["dataset"]["placement"] == "resident"
    assert streamed["dataset"]["placement"] == "streamed"
    on_disk = json.loads((tmp_path / "streamed" / "report.json").read_text())
    assert on_disk["dataset"]["placement"] == "streamed"
    assert _figures(streamed) == _figures(resident)
    # One decoded copy in the shared cache served both jobs.
    assert len([p for p in (cache / "data").iterdir() if not p.name.startswith(".")]) == 1
