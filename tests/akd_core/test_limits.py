"""Job bounds: check_job_limits names the field and the limit; run_job enforces them again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from akd_core.errors import AKDError, SpecError
from akd_core.limits import Limits, check_job_limits
from akd_core.spec import JobSpec, parse_spec


def _spec(**extra: Any) -> JobSpec:
    return parse_spec(
        {
            "teacher": {"source": "file:/nonexistent/teacher.onnx", "format": "onnx"},
            "student": {"arch": "mlp"},
            "dataset": {"source": "builtin:digits"},
            **extra,
        }
    )


def test_epochs_past_the_limit_name_both_phases_and_the_limit() -> None:
    spec = _spec(annealing={"tau_max": 1, "phase1_epochs": 10**9, "phase2_epochs": 0})
    with pytest.raises(SpecError) as info:
        check_job_limits(spec, Limits())
    assert info.value.field == "annealing.phase1_epochs"
    assert info.value.message == (
        "phase1_epochs + phase2_epochs = 1000000000 + 0 = 1000000000 exceeds the server's "
        "limit of 10000"
    )
    ok = _spec(annealing={"tau_max": 10, "phase1_epochs": 20, "phase2_epochs": 10})
    check_job_limits(ok, Limits(max_epochs=30))
    with pytest.raises(SpecError, match="= 30 exceeds the server's limit of 29"):
        check_job_limits(ok, Limits(max_epochs=29))


def test_batch_size_and_declared_classes_past_the_limits() -> None:
    with pytest.raises(SpecError, match="batch_size = 65536 exceeds .* limit of 8192") as info:
        check_job_limits(_spec(optimizer={"batch_size": 65536}), Limits())
    assert info.value.field == "optimizer.batch_size"
    big = _spec(dataset={"source": "builtin:digits", "num_classes": 5000})
    with pytest.raises(SpecError, match="num_classes = 5000 exceeds .* limit of 1000") as info:
        check_job_limits(big, Limits())
    assert info.value.field == "dataset.num_classes"


def test_student_size_is_checked_when_the_shape_is_known() -> None:
    huge = _spec(student={"arch": "mlp", "options": {"hidden": [65536] * 16}})
    check_job_limits(huge, Limits())  # shape unknown: left to the worker
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="has 6[0-9]{10} parameters .* limit of 100000000") as info:
        check_job_limits(huge, Limits(), (3, 32, 32), 10)
    assert time.perf_counter() - t0 < 1
    assert info.value.field == "student.options"
    wide = _spec(student={"arch": "resnet110", "options": {"width": 1024}})
    with pytest.raises(SpecError, match="'resnet110'.*parameters"):
        check_job_limits(wide, Limits(), (3, 32, 32), None)
    check_job_limits(_spec(student={"arch": "resnet110"}), Limits(), (3, 32, 32), 10)


def test_the_worker_checks_the_limits_again_before_any_work(tmp_path: Path) -> None:
    # The spec may have been queued under other settings; run_job refuses it itself,
    # with an AKDError (the worker fails such a job once instead of retrying it).
    from akd_core.pipeline import run_job

    long = _spec(annealing={"tau_max": 10, "phase1_epochs": 20, "phase2_epochs": 10})
    with pytest.raises(SpecError, match="limit of 29") as info:
        run_job(long, tmp_path / "a", limits=Limits(max_epochs=29))
    assert isinstance(info.value, AKDError)
    # The student's size needs the loaded data (digits: 1x8x8, 10 classes): the default
    # mlp has 64*128+128 + 128*64+64 + 64*10+10 = 17,226 parameters.
    # The teacher file must exist (its path is checked first) but is never opened.
    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(b"not read: the limit is checked before the teacher is loaded")
    spec = _spec(teacher={"source": f"file:{teacher}", "format": "onnx"})
    with pytest.raises(SpecError, match="has 17226 parameters .* limit of 17225"):
        run_job(spec, tmp_path / "b", limits=Limits(max_student_params=17225))
    assert not (tmp_path / "b" / "student.onnx").exists()
