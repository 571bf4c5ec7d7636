"""Spec fields that change what is trained or exported, checked by their effect."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from safetensors.numpy import load_file

from akd_core.pipeline import run_job
from akd_core.trainer import PhasePlan, plan_arm
from tests.akd_core import trainer_support as ts


def _files(tmp_path):
    return ts.write_teacher(tmp_path / "teacher.npy"), ts.write_dataset(tmp_path / "data.npz")


@pytest.mark.slow
def test_kd_as_main_method_exports_the_kd_student_at_the_requested_opset(monkeypatch, tmp_path):
    """method kd + compare student: the kd arm is the product, the student arm a baseline."""
    ts.install_fixed_teacher(monkeypatch)
    log, _ = ts.spy_training(monkeypatch)
    kd_val = [0.2, 0.9, 0.3, 0.4, 0.5, 0.6]  # the kd arm's best epoch is its 2nd
    student_val = [0.1, 0.2, 0.3, 0.4, 0.5, 0.95]
    scripted = ts.script_accuracy(monkeypatch, {ts.SIZES["val"]: kd_val + student_val})
    spec = ts.job_spec(*_files(tmp_path), method="kd", compare=["student"], export={"opset": 17})
    report = run_job(spec, tmp_path / "out")

    assert report["method"] == "kd" and set(report["baselines"]) == {"student"}
    hist = report["history"]
    assert [h["val_accuracy"] for h in hist] == kd_val  # every arm gets E1 + E2 = 6 epochs
    assert {(h["phase"], h["T"], h["phi"]) for h in hist} == {(1, None, None)}
    assert (report["student"]["best_epoch"], report["student"]["val_accuracy"]) == (2, 0.9)
    assert len(report["baselines"]["student"]["history"]) == 6
    assert len(log.kd_teacher) == 6 * 3 and log.ce_calls == 6 * 3 and log.phi == []
    # The exported weights are the kd arm's best epoch, not the baseline's.
    weights = load_file(str(tmp_path / "out" / "student.safetensors"))
    for k, v in scripted.weights[1].items():
        np.testing.assert_array_equal(weights[k], v.numpy(), err_msg=k)
    model = onnx.load(str(tmp_path / "out" / "student.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    assert report["onnx"]["opset"] == 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["akd.method"] == "kd" and json.loads(meta["input_shape"]) == list(ts.SHAPE)


def test_student_as_main_method_trains_on_labels_only(monkeypatch, tmp_path):
    teachers = ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    log, _ = ts.spy_training(monkeypatch)
    run_job(ts.job_spec(*_files(tmp_path), method="student"), tmp_path / "out")
    assert set(outputs.arms) == {"student"}
    assert log.ce_calls == 6 * 3 and log.kd_teacher == [] and log.phi == []
    (teacher,) = teachers
    assert len(teacher.calls) == 1  # the load-time shape check; nothing per batch
    assert teacher.cached_rows == ts.SIZES["val"] + ts.SIZES["test"]  # no train logits needed
    assert [h["phase"] for h in outputs.arms["student"].history] == [1] * 6


def _kd_by_hand(zs, zt, y, T, alpha) -> float:
    """(1 - alpha) CE(z_s, y) + alpha T^2 KL(p_t || p_s), per-sample KL averaged over the batch."""
    zs, zt = zs.double(), zt.double()
    ps = torch.exp(zs / T) / torch.exp(zs / T).sum(1, keepdim=True)
    pt = torch.exp(zt / T) / torch.exp(zt / T).sum(1, keepdim=True)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    p1 = torch.exp(zs) / torch.exp(zs).sum(1, keepdim=True)
    ce = -p1[torch.arange(len(y)), y].log().mean()
    return float((1 - alpha) * ce + alpha * T * T * kl)


@pytest.mark.parametrize(("temperature", "alpha"), [(2.0, 0.3), (4.0, 0.9), (1.0, 1.0)])
def test_kd_temperature_and_alpha_set_the_loss(monkeypatch, tmp_path, temperature, alpha):
    log, _ = ts.spy_training(monkeypatch)
    spec = ts.arm_spec(kd={"temperature": temperature, "alpha": alpha})
    ts.train_arm("kd", spec, ts.synthetic_train_data(), tmp_path)
    assert len(log.kd_values) == 6 * 2
    for got, zs, zt, y in zip(
        log.kd_values, log.kd_student, log.kd_teacher, log.kd_labels, strict=True
    ):
        assert got == pytest.approx(_kd_by_hand(zs, zt, y, temperature, alpha), rel=1e-5)


def test_kd_settings_change_the_first_step_loss(monkeypatch, tmp_path):
    """Same init, same first batch: only kd.temperature and kd.alpha differ."""
    firsts = []
    for kd in ({"temperature": 4.0, "alpha": 0.9}, {"temperature": 2.0, "alpha": 0.3}):
        log, _ = ts.spy_training(monkeypatch)
        ts.train_arm("kd", ts.arm_spec(kd=kd), ts.synthetic_train_data(), tmp_path / str(kd))
        firsts.append(log.kd_values[0])
    assert firsts[0] != pytest.approx(firsts[1], rel=1e-3)


def test_phase2_epochs_zero_trains_phase1_only(monkeypatch, tmp_path):
    log, opts = ts.spy_training(monkeypatch)
    spec = ts.arm_spec(annealing={"tau_max": 2, "phase1_epochs": 4, "phase2_epochs": 0})
    _, result = ts.train_arm("annealing", spec, ts.synthetic_train_data(), tmp_path)
    assert [h.phase for h in result.history] == [1, 1, 1, 1]
    assert log.ce_calls == 0 and len(opts.optimizers) == 1
    assert result.best_phase == 1
    # The baselines get the same budget: E1 + E2 = 4 epochs in one phase.
    assert plan_arm("kd", spec) == [PhasePlan(1, "training", 4, "kd")]
    assert plan_arm("student", spec) == [PhasePlan(1, "training", 4, "ce")]


def test_optimizer_lr_and_schedule_are_honoured(monkeypatch, tmp_path):
    log, opts = ts.spy_training(monkeypatch)
    spec = ts.arm_spec(
        optimizer={"lr": 0.05, "schedule": "constant", "weight_decay": 0.0, "batch_size": 16}
    )
    ts.train_arm("student", spec, ts.synthetic_train_data(), tmp_path)
    assert log.lr == [0.05] * 6 * 2
    assert opts.optimizers[0].param_groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize(("n", "sizes"), [(34, [16, 16, 2]), (33, [16, 16])])
def test_batch_size_sets_the_steps_and_drops_a_lone_trailing_sample(
    monkeypatch, tmp_path, n, sizes
):
    """BatchNorm cannot train on a batch of one: a trailing single sample is left out."""
    log, _ = ts.spy_training(monkeypatch)
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    ts.train_arm("kd", spec, ts.synthetic_train_data(n=n), tmp_path)
    assert [len(y) for y in log.kd_labels] == sizes


def test_seed_fixes_the_run_and_another_seed_changes_it(monkeypatch, tmp_path):
    ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    students = ts.watch_students(monkeypatch)
    teacher, data = _files(tmp_path)
    trained = []
    for i, seed in enumerate([3, 3, 4]):
        run_job(ts.job_spec(teacher, data, seed=seed), tmp_path / f"out{i}")
        trained.append(ts.state_copy(outputs.student))
    # The fixed input layer holds data statistics, which the seed does not change.
    for weights in (students.initial, trained):  # the initial student and the result
        keys = [k for k in weights[0] if not k.startswith("input_layer.")]
        same = [torch.equal(weights[0][k], weights[1][k]) for k in keys]
        other = [torch.equal(weights[0][k], weights[2][k]) for k in keys]
        assert all(same) and not any(other)


def test_min_teacher_accuracy_stops_a_teacher_at_chance(monkeypatch, tmp_path):
    from akd_core.errors import TrainingError

    ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    data = ts.write_dataset(tmp_path / "data.npz")
    wrong = ts.write_teacher(tmp_path / "wrong.npy", seed=5)  # labels come from seed 0
    with pytest.raises(TrainingError, match="near chance for 3 classes") as err:
        run_job(ts.job_spec(wrong, data), tmp_path / "a")
    assert "min_teacher_accuracy" in str(err.value) and outputs.arms == {}
    run_job(ts.job_spec(wrong, data, min_teacher_accuracy=0.0), tmp_path / "b")
    assert set(outputs.arms) == {"annealing"}


def test_compare_trains_each_named_baseline_once(monkeypatch, tmp_path):
    ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    students = ts.watch_students(monkeypatch)
    spec = ts.job_spec(*_files(tmp_path), method="kd", compare=["kd", "student"])
    run_job(spec, tmp_path / "out")
    assert list(outputs.arms) == ["kd", "student"] and len(students.initial) == 2


def test_seed_sets_the_batch_order(monkeypatch, tmp_path):
    """Same initial student, other seed: the epochs visit the samples in another order."""
    orders = []
    for i, seed in enumerate([3, 3, 4]):
        log, _ = ts.spy_training(monkeypatch)
        ts.train_arm("kd", ts.arm_spec(seed=seed), ts.synthetic_train_data(), tmp_path / str(i))
        orders.append(torch.cat(log.kd_student).sum(dim=1))  # a fingerprint of each batch
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
