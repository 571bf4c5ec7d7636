"""run_job hands report.json to the output stage whole: written there once, never patched after."""

from __future__ import annotations

import time

from akd_core.events import STAGES
from akd_core.pipeline import run_job
from tests.akd_core import trainer_support as ts


def test_the_pipeline_leaves_report_json_to_the_output_stage(monkeypatch, tmp_path):
    ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)  # the output stage writes nothing here
    data = ts.write_dataset(tmp_path / "data.npz")
    teacher = ts.write_teacher(tmp_path / "teacher.npy")
    before = time.perf_counter()
    run_job(ts.job_spec(teacher, data), tmp_path / "out", cache_dir=tmp_path / "cache")
    # The run's start reaches the output stage, which writes total_s with everything else.
    assert before <= outputs.facts.started <= time.perf_counter()
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_run_reports_its_stages_in_order_from_loading(monkeypatch, tmp_path):
    ts.install_fixed_teacher(monkeypatch)
    ts.skip_outputs(monkeypatch)
    data = ts.write_dataset(tmp_path / "data.npz")
    teacher = ts.write_teacher(tmp_path / "teacher.npy")
    seen: list[str] = []
    run_job(ts.job_spec(teacher, data), tmp_path / "out", cache_dir=tmp_path / "cache",
            on_event=lambda e: seen.append(e.stage) if e.kind == "phase" else None)  # fmt: skip
    assert seen[:2] == ["loading", "caching_teacher"]
    assert seen[-1] == "exporting"
    assert set(seen) <= set(STAGES)
