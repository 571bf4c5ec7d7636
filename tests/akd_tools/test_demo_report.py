"""The demo's summary (mean ± std over seeds, an honest verdict) and its kept output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from akd_tools import demo_report
from akd_tools.demo_report import (
    DemoOutputError,
    prepare_out_dir,
    seal_out_dir,
    summary_lines,
    write_summary,
)
from akd_tools.demo_results import collect, mean_std, pm


def _report(seed: int, annealing: float, kd: float, student: float) -> dict[str, Any]:
    """A report.json as a job writes it, cut to what the demo reads."""
    return {
        "teacher": {"accuracy": 0.99},
        "student": {"accuracy": annealing, "val_accuracy": annealing - 0.01},
        "baselines": {
            "student": {"accuracy": student, "val_accuracy": student},
            "kd": {"accuracy": kd, "val_accuracy": kd},
        },
        "dataset": {"sizes": {"train": 100, "val": 144, "test": 360}},
        "params": {"teacher": 23_000, "student": 1_442},
        "demo": {"seed": seed, "job": f"job{seed}", "onnx": annealing},
    }


def test_mean_std_is_the_sample_std_and_pm_prints_percent() -> None:
    assert mean_std([0.9, 0.92, 0.94]) == pytest.approx((0.92, 0.02))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert pm([0.9, 0.92, 0.94]) == "92.00 ± 2.00"
    assert pm([0.9, 0.92, 0.94], percent=False) == "0.9200 ± 0.0200"
    with pytest.raises(ValueError):
        mean_std([])


def test_collect_reads_each_arm_of_each_report_in_method_order() -> None:
    reports = [_report(0, 0.9, 0.8, 0.7), _report(1, 0.95, 0.85, 0.75)]
    assert collect(reports) == {
        "annealing": [0.9, 0.95],
        "kd": [0.8, 0.85],
        "student": [0.7, 0.75],
    }
    assert collect(reports, "val_accuracy")["annealing"] == pytest.approx([0.89, 0.94])


def test_summary_prints_mean_and_std_and_paired_gains() -> None:
    reports = [
        _report(0, 0.90, 0.86, 0.84),
        _report(1, 0.92, 0.88, 0.85),
        _report(2, 0.94, 0.87, 0.86),
    ]
    text = "\n".join(summary_lines(reports))
    assert "Annealing-KD       92.00 ± 2.00" in text
    assert "student-only       85.00 ± 1.00" in text
    assert "over 3 seeds (360 test images each, so one image is 0.28 points)" in text
    # Paired per seed: annealing - student = 6, 7, 8 points.
    assert "Annealing-KD is ahead of student-only by +7.00 ± 1.00 points, better on 3 of 3" in text


def test_summary_says_plainly_when_annealing_loses() -> None:
    reports = [_report(0, 0.90, 0.92, 0.95), _report(1, 0.90, 0.91, 0.93)]
    text = "\n".join(summary_lines(reports))
    assert "Annealing-KD did NOT beat student-only in this run (-4.00" in text
    assert "did NOT beat Hinton KD" in text
    assert "is ahead of" not in text


def test_outputs_are_kept_with_a_report_spec_and_summary(tmp_path: Path) -> None:
    out = prepare_out_dir(tmp_path / "runs" / "demo")
    for seed in (0, 1):
        (out / f"seed{seed}").mkdir()
        (out / f"seed{seed}" / "history.png").write_bytes(b"png")
    reports = [_report(0, 0.9, 0.85, 0.8), _report(1, 0.92, 0.86, 0.82)]
    report = write_summary(out, reports)
    md = report.read_text()
    assert report == out / "report.md"
    assert "[seed1/report.md](seed1/report.md)" in md
    assert "![history.png](seed0/history.png)" in md
    assert "| Annealing-KD | 91.00 ± 1.41 | 90.00, 92.00 |" in md
    assert json.loads((out / "summary.json").read_text())["test_accuracy"]["kd"] == [0.85, 0.86]
    spec = json.loads((out / "spec.json").read_text())
    assert (
        spec["teacher"]["source"] == f"file:{(out / 'teachers' / 'teacher-seed0.onnx').absolute()}"
    )
    assert spec["seed"] == 0


def test_a_second_run_replaces_the_demo_folder_but_never_foreign_files(tmp_path: Path) -> None:
    out = prepare_out_dir(tmp_path / "demo")
    (out / "seed0").mkdir()
    (out / "seed0" / "old.txt").write_text("from the last demo")
    prepare_out_dir(out)
    assert sorted(p.name for p in out.iterdir()) == [demo_report.MARKER]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DemoOutputError, match="holds files the demo did not write"):
        prepare_out_dir(mine)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_rerun_spares_files_added_to_a_finished_demo_folder(tmp_path: Path) -> None:
    out = prepare_out_dir(tmp_path / "demo")
    (out / "seed0").mkdir()
    (out / "seed0" / "report.md").write_text("the demo's model card")
    seal_out_dir(out)  # the demo finished
    (out / "seed0" / "my-notes.txt").write_text("keep me")
    with pytest.raises(DemoOutputError, match=r"did not write \(seed0/my-notes.txt\)"):
        prepare_out_dir(out)
    assert (out / "seed0" / "my-notes.txt").read_text() == "keep me"
    (out / "seed0" / "my-notes.txt").unlink()
    prepare_out_dir(out)  # only the demo's own files: replaced
    assert sorted(p.name for p in out.iterdir()) == [demo_report.MARKER]
