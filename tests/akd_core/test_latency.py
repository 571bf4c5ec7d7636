"""Measured latency: median and p90 at batch 1 and 32 within a budget, and ratios taken from them."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from akd_core import latency
from akd_core.export import export_onnx
from akd_core.latency import MAX_RUNS, MIN_RUNS, STABLE_MIN_RUNS, measure_latency
from akd_core.models import build_model
from akd_core.report import STUDENT_ONNX
from akd_core.size_latency import TEACHER_NOT_TIMED, size_latency_table
from tests.akd_core.int8_support import digits, export_report, student

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = build_model("mlp", (1, 8, 8), 10, {"hidden": [16]})
    return export_onnx(net, (1, 8, 8), tmp_path_factory.mktemp("lat") / "m.onnx", {})


def test_latency_has_median_and_p90_at_batch_1_and_32(mlp_onnx: Path) -> None:
    measured = measure_latency(mlp_onnx, (1, 8, 8), budget_s=0.1)
    d = measured.to_dict()
    assert d["threads"] == 1 and d["warmup_runs"] == latency.WARMUP_RUNS and d["budget_s"] == 0.1
    for key, batch in (("batch1", 1), ("batch32", 32)):
        b = d[key]
        assert b["batch"] == batch and MIN_RUNS <= b["runs"] <= MAX_RUNS
        assert 0.0 < b["median_ms"] <= b["p90_ms"] < 1000.0


def _clock(step_s: float):
    """A fake clock that moves `step_s` at every reading: each timed run lasts `step_s`."""
    ticks = itertools.count()
    return lambda: next(ticks) * step_s


def test_a_slow_model_gets_fewer_runs_within_the_budget(mlp_onnx: Path) -> None:
    slow = measure_latency(mlp_onnx, (1, 8, 8), budget_s=0.5, clock=_clock(0.1))
    fast = measure_latency(mlp_onnx, (1, 8, 8), budget_s=0.5, clock=_clock(1e-6))
    # 0.25 s per batch size; every run costs 0.1 s on the slow clock: the floor of MIN_RUNS.
    assert [b.runs for b in slow.batches] == [MIN_RUNS, MIN_RUNS]
    # Every run the same: the median is stable as soon as it may be checked.
    assert [b.runs for b in fast.batches] == [STABLE_MIN_RUNS, STABLE_MIN_RUNS]
    assert slow.at(1).median_ms == pytest.approx(100.0)  # one clock step between readings


def test_a_model_whose_times_do_not_settle_runs_on_until_the_run_cap(mlp_onnx: Path) -> None:
    """Each run a little slower than the one before: the median keeps moving, so no early stop."""
    reads = itertools.count()
    drifting = measure_latency(mlp_onnx, (1, 8, 8), budget_s=0.5,
                               clock=lambda: next(reads) ** 3 * 1e-10)  # fmt: skip
    assert [b.runs for b in drifting.batches] == [MAX_RUNS, MAX_RUNS]
    b1 = drifting.at(1)
    assert b1.p90_ms > b1.median_ms  # the figures are those of all 200 runs


def test_stability_is_a_relative_change_of_the_median() -> None:
    assert latency.is_stable(1.0, 1.0) and latency.is_stable(1.019, 1.0)
    assert not latency.is_stable(1.03, 1.0) and not latency.is_stable(float("inf"), 1.0)


def test_report_ratios_are_computed_from_the_measured_figures(tmp_path: Path) -> None:
    ds = digits()
    report = export_report(tmp_path, student("mlp", ds), ds, int8=True, int8_max_accuracy_drop=1.0)
    table = report["measured"]
    assert table["threads"] == 1 and table["batch_sizes"] == [1, 32]
    teacher, fp32, int8 = table["rows"]
    assert teacher["latency"] is None and teacher["note"] == TEACHER_NOT_TIMED
    assert fp32["size_bytes"] == (tmp_path / STUDENT_ONNX).stat().st_size
    assert fp32["latency"] == report["onnx"]["latency"]
    assert report["onnx"]["latency_ms_batch1"] == fp32["latency"]["batch1"]["median_ms"]
    for b in ("batch1", "batch32"):
        want = fp32["latency"][b]["median_ms"] / int8["latency"][b]["median_ms"]
        assert int8["vs_student_fp32"]["speedup"][b] == pytest.approx(want)
    assert int8["vs_student_fp32"]["size_ratio"] == pytest.approx(
        fp32["size_bytes"] / int8["size_bytes"]
    )
    assert fp32["vs_teacher"]["size_ratio"] == pytest.approx(113504 / fp32["size_bytes"])
    assert fp32["vs_teacher"]["params_ratio"] == pytest.approx(23950 / fp32["params"])


def test_a_timed_teacher_gives_speedups(tmp_path: Path) -> None:
    lat = {"threads": 1, "batch1": {"median_ms": 2.0}, "batch32": {"median_ms": 30.0}}
    onnx_info = {"file": "student.onnx", "size_bytes": 1000,
                 "latency": {"threads": 1, "batch1": {"median_ms": 0.5}, "batch32": {"median_ms": 3.0}}}  # fmt: skip
    teacher = {"format": "onnx", "params": 4000, "size_bytes": 8000, "latency": lat}
    rows = size_latency_table(teacher, 100, onnx_info, None)["rows"]
    assert rows[0]["note"] is None
    assert rows[1]["vs_teacher"] == {"speedup": {"batch1": 4.0, "batch32": 10.0},
                                     "size_ratio": 8.0, "params_ratio": 40.0}  # fmt: skip


def test_an_onnx_teacher_is_timed_in_its_sandbox_process(mlp_onnx: Path) -> None:
    from akd_core.report import teacher_facts
    from akd_core.spec import TeacherSpec
    from akd_core.teachers import load_teacher

    spec = TeacherSpec(source=f"file:{mlp_onnx}", format="onnx")
    teacher = load_teacher(spec, mlp_onnx, torch.device("cpu"))
    try:
        facts = teacher_facts(teacher, mlp_onnx)
    finally:
        teacher.release()
    lat = facts["latency"]
    assert facts["latency_note"] is None and lat["threads"] == 1
    for b in ("batch1", "batch32"):
        assert 0.0 < lat[b]["median_ms"] <= lat[b]["p90_ms"] and lat[b]["runs"] >= MIN_RUNS
    onnx_info = {"file": "student.onnx", "size_bytes": 10, "latency": lat}
    row = size_latency_table(facts, 1, onnx_info, None)["rows"][1]
    assert row["vs_teacher"]["speedup"] == {"batch1": 1.0, "batch32": 1.0}  # the same figures


def test_a_torch_teacher_is_not_timed_and_the_report_says_why() -> None:
    from types import SimpleNamespace

    from akd_core.size_latency import teacher_latency

    teacher = SimpleNamespace(format="torchscript", declared_input=None)
    latency, note = teacher_latency(teacher)
    assert latency is None and note is not None and "torchscript teacher runs in torch" in note


def test_malformed_latency_figures_from_a_teacher_process_are_refused(mlp_onnx: Path) -> None:
    from akd_core.latency import latency_from_dict

    good = measure_latency(mlp_onnx, (1, 8, 8), budget_s=0.02).to_dict()
    assert latency_from_dict(good).to_dict() == good
    for broken in ({**good, "threads": "1"}, {**good, "batch32": None},
                   {**good, "batch1": {**good["batch1"], "p90_ms": -1.0}},
                   {**good, "batch1": {**good["batch1"], "p90_ms": good["batch1"]["median_ms"] / 2}},
                   {**good, "batch1": {**good["batch1"], "median_ms": float("nan")}}):  # fmt: skip
        with pytest.raises(ValueError):
            latency_from_dict(broken)
