"""The method's rules, watched step by step: Phi, best-on-validation, Phase 2 restart, LR, arms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from akd_core.pipeline import run_job
from tests.akd_core import trainer_support as ts

# Cosine factors 0.5 (1 + cos(pi s / S)) worked out by hand: S = 8 (Phase 1) and S = 4 (Phase 2).
COSINE_8 = [1.0, 0.961940, 0.853553, 0.691342, 0.5, 0.308658, 0.146447, 0.038060]
COSINE_4 = [1.0, 0.853553, 0.5, 0.146447]


def _equal_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_phi_at_every_step_follows_the_official_rule(monkeypatch, tmp_path):
    """tau_max 4, E1 8: T = 4,4,3,3,2,2,1,1 and Phi(T) = 1 - (T-1)/4 at each of 2 steps."""
    log, _ = ts.spy_training(monkeypatch)
    spec = ts.arm_spec(annealing={"tau_max": 4, "phase1_epochs": 8, "phase2_epochs": 0})
    _, result = ts.train_arm("annealing", spec, ts.synthetic_train_data(), tmp_path)
    assert log.phi == [0.25] * 4 + [0.5] * 4 + [0.75] * 4 + [1.0] * 4
    assert [h.T for h in result.history] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert [h.phi for h in result.history] == [0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0]
    # Phase 1 regresses onto Phi * teacher logits: the cached logits reach the loss unchanged.
    data = ts.synthetic_train_data()
    assert all(any(torch.equal(r, t) for t in data.teacher_train) for r in log.anneal_teacher[0])


def test_best_epoch_is_chosen_on_validation_and_phase2_starts_from_it(monkeypatch, tmp_path):
    """Scripted validation: Phase 1's best is epoch 2 of 4, Phase 2's best is epoch 1 of 2."""
    log, opts = ts.spy_training(monkeypatch)
    data = ts.synthetic_train_data()
    scripted = ts.script_accuracy(monkeypatch, {len(data.x_val): [0.3, 0.8, 0.5, 0.6, 0.7, 0.4]})
    _, result = ts.train_arm("annealing", ts.arm_spec(), data, tmp_path)
    after_epoch = scripted.weights  # the student as evaluated after each epoch
    assert [h.val_accuracy for h in result.history] == [0.3, 0.8, 0.5, 0.6, 0.7, 0.4]
    # Phase 2 starts from the best Phase-1 student (epoch 2), not from the last (epoch 4).
    assert len(opts.start_weights) == 2
    assert _equal_states(opts.start_weights[1], after_epoch[1])
    assert not _equal_states(opts.start_weights[1], after_epoch[3])
    # The result is the best Phase-2 epoch on validation (epoch 1 of 2), not the last one.
    assert (result.best_phase, result.best_epoch, result.best_val_accuracy) == (2, 1, 0.7)
    assert _equal_states(result.best_state, after_epoch[4])
    # A fresh optimizer for Phase 2: no Adam moments or step count carried over.
    first, second = opts.optimizers
    assert second is not first
    steps = [int(s["step"]) for s in second.state.values()]
    assert steps and all(s == 2 * 2 for s in steps)  # 2 epochs x 2 steps, not 6 x 2
    # ... and a restarted schedule: the first Phase-2 step runs at the base learning rate.
    assert log.lr[8] == pytest.approx(0.01)


def test_adamw_cosine_learning_rate_per_step_and_epoch(monkeypatch, tmp_path):
    log, _ = ts.spy_training(monkeypatch)
    _, result = ts.train_arm("annealing", ts.arm_spec(), ts.synthetic_train_data(), tmp_path)
    expected = [0.01 * f for f in COSINE_8 + COSINE_4]
    assert log.lr == pytest.approx(expected, abs=1e-7)
    # The history's lr is the rate after each epoch's last step (what the next epoch starts at).
    lrs = [h.lr for h in result.history]
    assert lrs == pytest.approx([0.0085355, 0.005, 0.0014645, 0.0, 0.005, 0.0], abs=1e-7)


def test_sgd_step_recipe_per_epoch(monkeypatch, tmp_path):
    """Paper recipe: lr 0.1, x0.1 at 50% and x0.01 at 75% of EACH phase (E1 8, E2 4)."""
    log, opts = ts.spy_training(monkeypatch)
    spec = ts.arm_spec(
        annealing={"tau_max": 2, "phase1_epochs": 8, "phase2_epochs": 4},
        optimizer={"name": "sgd", "batch_size": 16},
    )
    ts.train_arm("annealing", spec, ts.synthetic_train_data(), tmp_path)
    per_epoch = log.lr[::2]  # 2 steps an epoch, same rate within an epoch
    assert log.lr[1::2] == per_epoch
    phase1 = [0.1] * 4 + [0.01] * 2 + [0.001] * 2
    phase2 = [0.1] * 2 + [0.01] + [0.001]
    assert per_epoch == pytest.approx(phase1 + phase2, rel=1e-9)
    group = opts.optimizers[0].param_groups[0]
    assert isinstance(opts.optimizers[0], torch.optim.SGD)
    assert (group["momentum"], group["weight_decay"]) == (0.9, 1e-4)


def _pipeline_fakes(monkeypatch, tmp_path, **spec_over):
    teachers = ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    teacher = ts.write_teacher(tmp_path / "teacher.npy")
    data = ts.write_dataset(tmp_path / "data.npz")
    return teachers, outputs, ts.job_spec(teacher, data, **spec_over)


def _raw_train_x(tmp_path) -> torch.Tensor:
    return torch.from_numpy(np.load(tmp_path / "data.npz")["x"])


def test_every_arm_starts_from_identical_weights(monkeypatch, tmp_path):
    _, outputs, spec = _pipeline_fakes(monkeypatch, tmp_path, compare=["kd", "student"])
    students = ts.watch_students(monkeypatch)
    run_job(spec, tmp_path / "out")
    assert len(students.initial) == 3
    first = students.initial[0]
    assert all(_equal_states(first, other) for other in students.initial[1:])
    assert set(outputs.arms) == {"annealing", "kd", "student"}


def test_best_epoch_never_looks_at_the_test_split(monkeypatch, tmp_path):
    """Validation and test scripts disagree; the exported student follows validation only."""
    _, outputs, spec = _pipeline_fakes(monkeypatch, tmp_path)
    n_val, n_test = ts.SIZES["val"], ts.SIZES["test"]
    scripted = ts.script_accuracy(
        monkeypatch,
        {
            n_val: [0.3, 0.8, 0.5, 0.6, 0.7, 0.4],
            n_test: [0.9, 0.1, 0.1, 0.95, 0.1, 0.99],  # would pick epochs 4 and 2 instead
        },
    )
    run_job(spec, tmp_path / "out")
    assert scripted.seen_sizes == [n_val] * 6
    summary = outputs.arms["annealing"]
    assert (summary.best_phase, summary.best_epoch, summary.val_accuracy) == (2, 1, 0.7)
    assert _equal_states(ts.state_copy(outputs.student), scripted.weights[4])


def _rows_from(batch: torch.Tensor, pool: torch.Tensor) -> float:
    """Share of the batch's samples that are exact copies of a sample in `pool`."""
    flat = pool.flatten(1)
    hits = [bool((flat == row).all(dim=1).any()) for row in batch.flatten(1)]
    return sum(hits) / len(hits)


def test_crop_flip_runs_the_teacher_on_each_augmented_batch(monkeypatch, tmp_path):
    teachers, _, spec = _pipeline_fakes(monkeypatch, tmp_path, augment="crop-flip", compare=["kd"])
    log, _ = ts.spy_training(monkeypatch)
    ts.watch_students(monkeypatch, log)
    run_job(spec, tmp_path / "out", cache_dir=tmp_path / "cache")

    (teacher,) = teachers
    steps = len(log.anneal_teacher) + len(log.kd_teacher)
    assert steps == 4 * 3 + 6 * 3  # annealing Phase 1 and every kd epoch, 3 steps each
    # One teacher call per batch (after the load-time shape checks on zeros: before and after
    # the data is read), on the very tensor the student got, and the loss got that call's logits.
    checks = [c for c in teacher.calls if c.count_nonzero() == 0]
    assert checks and all(c is teacher.calls[i] for i, c in enumerate(checks))  # first, only
    per_batch = teacher.calls[len(checks) :]
    assert len(per_batch) == steps
    for seen, given in zip(per_batch, log.teacher_step_inputs, strict=True):
        assert torch.equal(seen, given)
    for logits, given in zip(
        log.anneal_teacher + log.kd_teacher, log.teacher_step_inputs, strict=True
    ):
        assert torch.allclose(logits, teacher.logits(given))
    # The batches were augmented (crop-flip copies almost no sample verbatim) ...
    raw = _raw_train_x(tmp_path)
    assert max(_rows_from(b, raw) for b in per_batch) < 0.5
    # ... and no training-split logits were cached or read: only val and test went through it.
    assert teacher.cached_rows == ts.SIZES["val"] + ts.SIZES["test"]


def test_without_augmentation_the_cache_feeds_the_loss(monkeypatch, tmp_path):
    teachers, _, spec = _pipeline_fakes(monkeypatch, tmp_path, compare=["kd"])
    log, _ = ts.spy_training(monkeypatch)
    ts.watch_students(monkeypatch, log)
    run_job(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    (teacher,) = teachers
    # The load-time shape checks on zeros only: no per-batch teacher.
    assert teacher.calls and all(c.count_nonzero() == 0 for c in teacher.calls)
    assert teacher.cached_rows == sum(ts.SIZES.values())
    raw = _raw_train_x(tmp_path)
    for logits, given in zip(
        log.anneal_teacher + log.kd_teacher, log.teacher_step_inputs, strict=True
    ):
        assert _rows_from(given, raw) == 1.0  # un-augmented training samples
        assert torch.allclose(logits, teacher.logits(given), atol=1e-5)  # cached rows line up
