"""`akd distill` on a text job as a user runs it: a real process, a zipped transformers teacher,
a csv file of sentences, and the output folder a deployment takes."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from tests.akd_core.text_support import copy_teacher, sentences, write_csv, zip_folder

pytestmark = pytest.mark.slow


def _distill(spec: dict, cwd) -> subprocess.CompletedProcess[str]:
    (cwd / "spec.json").write_text(json.dumps(spec))
    return subprocess.run(
        [sys.executable, "-m", "akd_core.cli", "spec.json", "--out", "run", "--quiet"],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )  # fmt: skip


def _spec(tmp_path) -> dict:
    rows = [
        [t, lab, "test" if i % 5 == 0 else "train"] for i, (t, lab) in enumerate(sentences(150))
    ]
    write_csv(tmp_path / "reviews.csv", ["review", "sentiment", "split"], rows)
    return {
        "teacher": {"source": "file:teacher.zip", "format": "hf"},
        "student": {
            "arch": "bert",
            "options": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64},
        },  # fmt: skip
        "dataset": {
            "source": "file:reviews.csv",
            "text_column": "review",
            "label_column": "sentiment",
            "split_column": "split",
            "max_length": 32,
        },  # fmt: skip
        "annealing": {"tau_max": 2, "phase1_epochs": 4, "phase2_epochs": 2},
        "optimizer": {"lr": 3e-3, "batch_size": 8},
        "device": "cpu",
    }


def test_distill_a_zipped_hf_teacher_on_a_csv_end_to_end(tmp_path):
    zip_folder(copy_teacher(tmp_path / "teacher"), tmp_path / "teacher.zip")
    proc = _distill(_spec(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "student" in proc.stdout and "onnx" in proc.stdout
    out = tmp_path / "run"
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["sizes"]["test"] == 30  # the split column's test rows
    assert report["teacher"]["accuracy"] > 0.9 and report["student"]["accuracy"] > 0.6
    for name in ("student.onnx", "report.md", "tokenizer/tokenizer.json",
                 "student_hf/config.json", "student_hf/model.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name


def test_distill_refuses_pickled_weights_with_the_conversion_hint(tmp_path):
    folder = copy_teacher(tmp_path / "teacher")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    zip_folder(folder, tmp_path / "teacher.zip")
    proc = _distill(_spec(tmp_path), tmp_path)
    assert proc.returncode == 2, proc.stdout
    assert "pytorch_model.bin" in proc.stderr and "safe_serialization=True" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert zipfile.is_zipfile(tmp_path / "teacher.zip")
