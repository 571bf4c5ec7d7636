"""optimizer.micro_batch_size: gradient accumulation that equals the full batch's gradient."""

from __future__ import annotations

import pytest
import torch

from akd_core.errors import SpecError
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.trainer import ArmTrainer, Progress, micro_slices
from tests.akd_core import trainer_support as ts
from tests.akd_core.test_trainer_fast_step import image_data


def _weights(arm: str, data, tmp_path, shape, **optimizer):
    spec = ts.arm_spec(
        annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
        # SGD: a wrongly scaled gradient moves its weights (AdamW would normalise it away).
        optimizer={"batch_size": 16, "name": "sgd", **optimizer},
    )
    torch.manual_seed(0)
    model = build_model("mlp", shape, 3, {"hidden": [8]})  # no BatchNorm: exact equivalence
    t = ArmTrainer(arm, spec, model, data, torch.device("cpu"), tmp_path / str(optimizer),
                   Hooks(), Progress(1))  # fmt: skip
    result = t.run(resume=False)
    return {k: v.clone() for k, v in t.model.state_dict().items()}, result.history[0].train_loss


@pytest.mark.parametrize("arm", ["annealing", "kd", "student"])
def test_one_epoch_with_accumulation_gives_the_full_batch_weights(arm, tmp_path):
    """Batch 16 in micro-batches of 4 and of 8: the same weights and mean loss."""
    data = ts.synthetic_train_data(n=40)  # 40 = 16 + 16 + 8: a short last batch too
    full, full_loss = _weights(arm, data, tmp_path, (6,))
    for micro in (4, 8):
        acc, acc_loss = _weights(arm, data, tmp_path, (6,), micro_batch_size=micro)
        assert acc_loss == pytest.approx(full_loss, rel=1e-5)
        for k, v in full.items():
            assert torch.allclose(acc[k], v, atol=1e-6), k


def test_accumulation_with_augmentation_runs_the_teacher_per_micro_batch(tmp_path):
    """crop-flip draws once per batch, so micro-batches see the full batch's augmented rows."""
    full, full_loss = _weights("annealing", image_data(), tmp_path, (1, 8, 8))
    acc, acc_loss = _weights("annealing", image_data(), tmp_path, (1, 8, 8), micro_batch_size=8)
    assert acc_loss == pytest.approx(full_loss, rel=1e-5)
    assert all(torch.allclose(acc[k], v, atol=1e-6) for k, v in full.items())


def test_micro_slices_cover_the_batch_without_a_single_row_tail():
    assert micro_slices(16, 4) == [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16)]
    assert micro_slices(9, 4) == [slice(0, 4), slice(4, 9)]  # 4 + 4 + 1 -> 4 + 5
    assert micro_slices(6, 4) == [slice(0, 4), slice(4, 6)]
    assert micro_slices(3, 8) == [slice(0, 3)]
    assert micro_slices(1, 4) == [slice(0, 1)]


@pytest.mark.parametrize(("micro", "hint"), [(48, "32 or 16 or 8"), (256, "128 or 64 or 32")])
def test_a_micro_batch_that_does_not_divide_the_batch_is_refused(micro, hint):
    with pytest.raises(SpecError) as err:
        ts.arm_spec(optimizer={"batch_size": 128, "micro_batch_size": micro})
    assert err.value.field == "optimizer"
    assert f"micro_batch_size ({micro}) must divide batch_size (128)" in str(err.value)
    assert hint in str(err.value)


def test_micro_batch_defaults_to_the_batch():
    assert ts.arm_spec().optimizer.resolved_micro_batch_size == 16
    spec = ts.arm_spec(optimizer={"batch_size": 16, "micro_batch_size": 16})
    assert spec.optimizer.resolved_micro_batch_size == 16


def test_the_memory_preflight_counts_the_activations_of_one_micro_batch():
    """A batch too large for the device passes once its micro-batch fits: the point of it."""
    from akd_core.preflight import estimate_memory

    full = ts.arm_spec(optimizer={"batch_size": 512})
    micro = ts.arm_spec(optimizer={"batch_size": 512, "micro_batch_size": 64})
    small = ts.arm_spec(optimizer={"batch_size": 64})
    args = ((1, 8, 8), 3, 100, 0)
    assert estimate_memory(micro, *args).activations == estimate_memory(small, *args).activations
    assert estimate_memory(full, *args).activations == 8 * estimate_memory(micro, *args).activations
