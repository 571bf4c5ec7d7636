"""Trainer details that `make mutation` showed untested: progress and ETA, the per-epoch
history record, the mean training loss, and mixed precision honoured as asked."""

from __future__ import annotations

import warnings

import pytest
import torch

from akd_core import trainer
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.trainer import ArmTrainer, Progress
from tests.akd_core import trainer_support as ts


def test_progress_moves_linearly_over_its_share_of_the_run():
    p = Progress(total_epochs=4, start=0.1, end=0.9)
    assert p.fraction() == pytest.approx(0.1) and p.eta_s() is None
    p.advance(10.0)
    p.advance(20.0)
    assert p.done_epochs == 2 and p.fraction() == pytest.approx(0.5)
    single = Progress(total_epochs=1, start=0.2, end=0.6)
    single.advance(1.0)
    assert single.fraction() == pytest.approx(0.6)
    assert Progress(total_epochs=0, start=0.3).fraction() == pytest.approx(0.3)


def test_eta_is_a_smoothed_epoch_time_times_the_epochs_left():
    p = Progress(total_epochs=5)
    p.advance(10.0)
    assert p.seconds_per_epoch == 10.0 and p.eta_s() == pytest.approx(40.0)
    p.advance(20.0)  # 0.7 * 10 + 0.3 * 20: one slow epoch moves the estimate, not all of it
    assert p.seconds_per_epoch == pytest.approx(13.0) and p.eta_s() == pytest.approx(39.0)


class _CELog(trainer.CrossEntropyLoss):
    """Cross-entropy that records each step's value and batch size."""

    steps: list[tuple[float, int]] = []

    def forward(self, student_logits, labels):
        value = super().forward(student_logits, labels)
        _CELog.steps.append((float(value.detach()), len(labels)))
        return value


def test_train_loss_is_the_sample_weighted_mean_of_the_steps(monkeypatch, tmp_path):
    _CELog.steps = []
    monkeypatch.setattr(trainer, "CrossEntropyLoss", _CELog)
    data = ts.synthetic_train_data(n=40)  # batch 16: steps of 16, 16 and 8 samples
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    _, result = ts.train_arm("student", spec, data, tmp_path)
    assert [n for _, n in _CELog.steps] == [16, 16, 8]
    expected = sum(v * n for v, n in _CELog.steps) / 40
    assert result.history[0]["train_loss"] == pytest.approx(expected, rel=1e-6)


def test_history_has_t_and_phi_in_phase_1_and_nulls_in_phase_2(tmp_path):
    spec = ts.arm_spec(annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1})
    _, result = ts.train_arm("annealing", spec, ts.synthetic_train_data(), tmp_path)
    got = [(r["phase"], r["epoch"], r["T"], r["phi"]) for r in result.history]
    assert got == [(1, 1, 2, 0.5), (1, 2, 1, 1.0), (2, 1, None, None)]
    _, kd = ts.train_arm("kd", spec, ts.synthetic_train_data(), tmp_path / "kd")
    assert all(r["T"] is None and r["phi"] is None for r in kd.history)


def _forward_dtypes(tmp_path, amp_dtype):
    """The dtype of the student's logits at every training and evaluation forward pass."""
    data = ts.synthetic_train_data()
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    seen: list[torch.dtype] = []
    model.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    with warnings.catch_warnings():  # float16 asks for a CUDA GradScaler: it warns on a CPU host
        warnings.simplefilter("ignore", UserWarning)
        t = ArmTrainer("student", spec, model, data, torch.device("cpu"), tmp_path, Hooks(),
                       Progress(total_epochs=1), amp_dtype=amp_dtype)  # fmt: skip
        t.run(resume=False)
    return set(seen)


@pytest.mark.parametrize("amp_dtype", [None, torch.bfloat16, torch.float16])
def test_the_forward_pass_runs_in_the_precision_asked_for(tmp_path, amp_dtype):
    assert _forward_dtypes(tmp_path, amp_dtype) == {amp_dtype or torch.float32}
