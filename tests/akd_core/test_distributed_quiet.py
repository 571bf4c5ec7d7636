"""A data-parallel conv student prints nothing of its own: no DDP "Grad strides do not match
bucket view strides" warning per rank (one-channel images under crop-flip are channels-last)."""

from __future__ import annotations

import pytest
import torch

from akd_core.data.augment import crop_flip
from akd_core.distributed import ParallelArm, train_arm_parallel
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.trainer import Progress, TrainData
from tests.akd_core import trainer_support as ts

SHAPE, CLASSES, ROWS = (1, 8, 8), 3, 64  # digits-like: one channel


def _data() -> TrainData:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((ROWS, *SHAPE), generator=g)
    y = torch.randint(0, CLASSES, (ROWS,), generator=g)
    return TrainData(x_train=x, y_train=y, x_val=x[:16].clone(), y_val=y[:16].clone(),
                     augment=crop_flip)  # fmt: skip


@pytest.mark.slow
def test_two_gloo_ranks_of_a_conv_student_print_no_warning(tmp_path, capfd) -> None:
    """The ranks inherit this process's stderr: whatever they print, a user would see."""
    torch.manual_seed(0)
    student = build_model("cnn-tiny", SHAPE, CLASSES)  # a one-input-channel conv, BatchNorm
    spec = ts.arm_spec(
        method="student",
        dataset={"source": "file:unused.npz", "augment": "crop-flip"},
        annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
        optimizer={"batch_size": 32, "compile": "off"},
    )
    job = ParallelArm("student", spec, student, _data(), "cpu", tmp_path, Progress(1), None,
                      "job", False)  # fmt: skip
    result = train_arm_parallel(job, 2, Hooks())
    assert len(result.history) == 1  # it trained
    err = capfd.readouterr().err
    assert "Grad strides do not match bucket view strides" not in err
    assert "Warning" not in err, err
