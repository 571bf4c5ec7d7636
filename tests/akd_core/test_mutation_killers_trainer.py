"""Trainer details that `make mutation` showed untested: progress and ETA, the per-epoch
history record, the mean training loss, and mixed precision honoured as asked."""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import pytest
import torch

from akd_core import step_loss
from akd_core.checkpoint import checkpoint_path, load_checkpoint
from akd_core.errors import JobCancelled, SpecError, TrainingError
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


class _CELog(step_loss.CrossEntropyLoss):
    """Cross-entropy that records each step's value and batch size."""

    steps: list[tuple[float, int]] = []

    def forward(self, student_logits, labels):
        value = super().forward(student_logits, labels)
        _CELog.steps.append((float(value.detach()), len(labels)))
        return value


def test_train_loss_is_the_sample_weighted_mean_of_the_steps(monkeypatch, tmp_path):
    _CELog.steps = []
    monkeypatch.setattr(step_loss, "CrossEntropyLoss", _CELog)
    data = ts.synthetic_train_data(n=40)  # batch 16: steps of 16, 16 and 8 samples
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    _, result = ts.train_arm("student", spec, data, tmp_path)
    assert [n for _, n in _CELog.steps] == [16, 16, 8]
    expected = sum(v * n for v, n in _CELog.steps) / 40
    assert result.history[0].train_loss == pytest.approx(expected, rel=1e-6)


def test_history_has_t_and_phi_in_phase_1_and_nulls_in_phase_2(tmp_path):
    spec = ts.arm_spec(annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1})
    _, result = ts.train_arm("annealing", spec, ts.synthetic_train_data(), tmp_path)
    got = [(r.phase, r.epoch, r.T, r.phi) for r in result.history]
    assert got == [(1, 1, 2, 0.5), (1, 2, 1, 1.0), (2, 1, None, None)]
    _, kd = ts.train_arm("kd", spec, ts.synthetic_train_data(), tmp_path / "kd")
    assert all(r.T is None and r.phi is None for r in kd.history)


def _forward_dtypes(tmp_path, amp_dtype):
    """The dtype of the student's logits at every training forward pass (eval passes: fp32)."""
    data = ts.synthetic_train_data()
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    seen: list[torch.dtype] = []
    evaluated: list[torch.dtype] = []  # validation runs in fp32, like test and the ONNX export
    model.register_forward_hook(
        lambda m, _i, out: (seen if m.training else evaluated).append(out.dtype)
    )
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    with warnings.catch_warnings():  # float16 asks for a CUDA GradScaler: it warns on a CPU host
        warnings.simplefilter("ignore", UserWarning)
        t = ArmTrainer("student", spec, model, data, torch.device("cpu"), tmp_path, Hooks(),
                       Progress(total_epochs=1), amp_dtype=amp_dtype)  # fmt: skip
        t.run(resume=False)
    assert set(evaluated) == {torch.float32}
    return set(seen)


@pytest.mark.parametrize("amp_dtype", [None, torch.bfloat16, torch.float16])
def test_the_forward_pass_runs_in_the_precision_asked_for(tmp_path, amp_dtype):
    assert _forward_dtypes(tmp_path, amp_dtype) == {amp_dtype or torch.float32}


def test_a_single_sample_epoch_reports_that_samples_loss(monkeypatch, tmp_path):
    _CELog.steps = []
    monkeypatch.setattr(step_loss, "CrossEntropyLoss", _CELog)
    data = ts.synthetic_train_data(n=1)
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    _, result = ts.train_arm("student", spec, data, tmp_path)
    assert len(_CELog.steps) == 1
    assert result.history[0].train_loss == pytest.approx(_CELog.steps[0][0], rel=1e-6)


def test_each_epoch_record_and_event_carry_the_contract_fields(tmp_path):
    events: list = []
    spec = ts.arm_spec(annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1})
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    progress = Progress(total_epochs=3)
    t = ArmTrainer("annealing", spec, model, ts.synthetic_train_data(), torch.device("cpu"),
                   tmp_path, Hooks(on_event=events.append), progress)  # fmt: skip
    started = time.perf_counter()
    result = t.run(resume=False)
    took = time.perf_counter() - started
    keys = {"phase", "epoch", "T", "phi", "train_loss", "val_accuracy", "lr", "seconds"}
    assert all(set(r.to_dict()) == keys for r in result.history)
    assert all(0 < r.seconds <= took for r in result.history)
    assert [(e.kind, e.stage, e.phase, e.epoch, e.epochs) for e in events] == [
        ("phase", "annealing", 1, None, 2),
        ("epoch", "annealing", 1, 1, 2),
        ("epoch", "annealing", 1, 2, 2),
        ("phase", "finetuning", 2, None, 1),
        ("epoch", "finetuning", 2, 1, 1),
    ]
    assert [e.message for e in events if e.kind == "phase"] == [
        "annealing: annealing starts",
        "annealing: finetuning starts",
    ]
    epochs = [e for e in events if e.kind == "epoch"]
    for e, r in zip(epochs, result.history, strict=True):
        assert e.arm == "annealing" and e.message == ""
        assert (e.T, e.phi, e.train_loss, e.val_accuracy) == (
            r.T,
            r.phi,
            r.train_loss,
            r.val_accuracy,
        )
        assert e.samples_per_s == pytest.approx(32 / r.seconds)
    assert [e.progress for e in epochs] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert epochs[-1].eta_s == 0.0 and epochs[0].eta_s > 0
    assert progress.done_epochs == 3 and 0 < progress.seconds_per_epoch <= took


def test_a_non_finite_loss_stops_the_arm_with_advice(tmp_path):
    data = ts.synthetic_train_data()
    data.teacher_train = torch.full_like(data.teacher_train, float("nan"))
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    with pytest.raises(TrainingError) as err:
        ts.train_arm("annealing", spec, data, tmp_path)
    assert str(err.value) == (
        "annealing: the training loss became nan in epoch 1; "
        "lower optimizer.lr or check the scale of the teacher logits"
    )


def _equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_result(a, b) -> None:
    # Equal records but for the time each epoch took.
    assert [replace(r, seconds=0.0) for r in a.history] == [
        replace(r, seconds=0.0) for r in b.history
    ]
    assert (a.best_phase, a.best_epoch, a.best_val_accuracy) == (
        b.best_phase,
        b.best_epoch,
        b.best_val_accuracy,
    )
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)


# 2 steps an epoch, 4 epochs: stop in Phase-1 epoch 2, Phase-2 epoch 1 and Phase-2 epoch 2.
@pytest.mark.parametrize("stop_at_step", [3, 5, 7])
def test_a_stopped_arm_resumes_to_exactly_the_uninterrupted_result(tmp_path, stop_at_step):
    reference = ts.annealing_trainer(tmp_path / "ref", Hooks(), Progress(4)).run(resume=False)
    out = tmp_path / "stopped"
    with pytest.raises(JobCancelled):
        stopped = Hooks(should_cancel=ts.StopAfter(stop_at_step))
        ts.annealing_trainer(out, stopped, Progress(4)).run(resume=False)
    progress = Progress(total_epochs=4)
    started = time.perf_counter()
    resumed = ts.annealing_trainer(out, Hooks(), progress).run(resume=True)
    _same_result(resumed, reference)
    assert progress.done_epochs == 4  # the epochs done before the stop count as done
    assert 0 < resumed.train_seconds < time.perf_counter() - started + 60


class _GrowingCpuScaler(torch.amp.GradScaler):
    """An fp16 loss scaler that works on this CPU-only host and doubles its scale every step."""

    def __init__(self, device: str, enabled: bool) -> None:
        super().__init__("cpu", init_scale=2.0, growth_interval=1, enabled=enabled)


def test_the_fp16_loss_scale_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.amp, "GradScaler", _GrowingCpuScaler)
    reference = ts.annealing_trainer(
        tmp_path / "ref", Hooks(), Progress(4), amp_dtype=torch.float16
    )
    reference.run(resume=False)
    assert reference.scaler.get_scale() == 2.0 * 2**8  # 8 steps, none overflowed
    out = tmp_path / "stopped"
    with pytest.raises(JobCancelled):  # after 2 epochs (4 steps): the scale is 32 by then
        stopped = Hooks(should_cancel=ts.StopAfter(5))
        ts.annealing_trainer(out, stopped, Progress(4), amp_dtype=torch.float16).run(resume=False)
    resumed = ts.annealing_trainer(out, Hooks(), Progress(4), amp_dtype=torch.float16)
    resumed.run(resume=True)
    assert resumed.scaler.get_scale() == reference.scaler.get_scale()


def test_a_finished_arm_resumes_without_training(tmp_path):
    first = ts.annealing_trainer(tmp_path, Hooks(), Progress(4)).run(resume=False)
    saved = load_checkpoint(checkpoint_path(tmp_path, "annealing"))
    assert saved is not None and saved["done"] is True and saved["arm"] == "annealing"
    assert saved["run_key"] == "job-1" and len(saved["history"]) == 4
    events: list = []
    progress = Progress(8)  # this arm's 4 epochs and another arm's 4 still to come
    again = ts.annealing_trainer(tmp_path, Hooks(on_event=events.append), progress)
    _same_result(again.run(resume=True), first)
    assert events == []  # no phase started, no epoch trained
    # its epochs count as done: the next arm's progress starts at 50%, not at 0%
    assert progress.done_epochs == 4 and progress.fraction() == 0.5


def test_resuming_another_jobs_checkpoint_is_refused(tmp_path):
    ts.annealing_trainer(tmp_path, Hooks(), Progress(4)).run(resume=False)
    with pytest.raises(SpecError) as err:
        ts.annealing_trainer(tmp_path, Hooks(), Progress(4), run_key="job-2").run(resume=True)
    assert err.value.field == "resume"
    assert err.value.message == (
        f"{checkpoint_path(tmp_path, 'annealing')} was written by a run with another spec, "
        "dataset or teacher; resume only the same job (or start it in a new output folder)"
    )


def test_a_tie_on_validation_keeps_the_earliest_epoch(monkeypatch, tmp_path):
    """Phase 1 peaks at 0.8 in epochs 2 and 3, Phase 2 at 0.7 in epochs 1 and 2."""
    _, opts = ts.spy_training(monkeypatch)
    data = ts.synthetic_train_data()
    scripted = ts.script_accuracy(monkeypatch, {len(data.x_val): [0.5, 0.8, 0.8, 0.6, 0.7, 0.7]})
    _, result = ts.train_arm("annealing", ts.arm_spec(), data, tmp_path)
    after_epoch = scripted.weights
    # Phase 2 starts from epoch 2 (the first to reach 0.8), not epoch 3
    assert _equal_states(opts.start_weights[1], after_epoch[1])
    assert not _equal_states(opts.start_weights[1], after_epoch[2])
    assert (result.arm, result.best_phase, result.best_epoch) == ("annealing", 2, 1)
    assert _equal_states(result.best_state, after_epoch[4])


def test_progress_adds_to_the_epochs_of_the_arms_before(tmp_path):
    # A finished arm and a stopped one, each resumed after another arm's 4 epochs were counted.
    ts.annealing_trainer(tmp_path / "done", Hooks(), Progress(4)).run(resume=False)
    progress = Progress(12, done_epochs=4)
    ts.annealing_trainer(tmp_path / "done", Hooks(), progress).run(resume=True)
    assert progress.done_epochs == 8
    with pytest.raises(JobCancelled):
        stopped = Hooks(should_cancel=ts.StopAfter(5))  # after 2 of its 4 epochs
        ts.annealing_trainer(tmp_path / "stopped", stopped, Progress(4)).run(resume=False)
    progress = Progress(12, done_epochs=8)
    ts.annealing_trainer(tmp_path / "stopped", Hooks(), progress).run(resume=True)
    assert progress.done_epochs == 12 and progress.fraction() == 1.0


def test_a_fresh_run_trains_again_whatever_checkpoint_the_folder_holds(tmp_path):
    ts.annealing_trainer(tmp_path, Hooks(), Progress(4)).run(resume=False)
    events: list = []
    again = ts.annealing_trainer(tmp_path, Hooks(on_event=events.append), Progress(4))
    result = again.run(resume=False)
    assert [e.kind for e in events].count("epoch") == 4 and len(result.history) == 4


def test_two_samples_at_batch_size_one_are_two_steps(tmp_path):
    spec = ts.arm_spec(optimizer={"batch_size": 1})
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    data = ts.synthetic_train_data(n=2)
    t = ArmTrainer(
        "student", spec, model, data, torch.device("cpu"), tmp_path, Hooks(), Progress(1)
    )
    assert t._steps_per_epoch() == 2
