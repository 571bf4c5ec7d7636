"""Loss details that `make mutation` showed untested: a half-precision teacher (an AMP teacher
on a GPU answers in float16) is scaled and softened in the student's precision."""

import warnings

import pytest
import torch

from akd_core.losses import AnnealingLoss, HintonKDLoss

# 1000.5 is exact in float16, but 1000.5 * 0.1 is not: float16 rounds it to 100.0625.
TEACHER_FP16 = torch.tensor([[1000.5, -3.0, 2.0]], dtype=torch.float16)


def test_annealing_scales_a_float16_teacher_in_float32():
    student = TEACHER_FP16.float() * 0.1  # exactly the float32 target
    loss = AnnealingLoss()(student, TEACHER_FP16, 0.1)
    assert loss.dtype == torch.float32
    # Scaling in float16 first would leave (100.05 - 100.0625)^2 / 3 = 5.2e-5 of loss.
    assert loss.item() < 1e-9


def test_hinton_kd_softens_a_float16_teacher_in_float32():
    student = torch.tensor([[4.0, 1.0, -2.0]])
    teacher = torch.tensor([[1.3, 0.7, -0.1]], dtype=torch.float16)
    loss = HintonKDLoss(3.0, 1.0)(student, teacher, torch.tensor([0]))
    reference = HintonKDLoss(3.0, 1.0)(student, teacher.float(), torch.tensor([0]))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_a_float64_teacher_leaves_the_loss_in_the_students_dtype():
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, dtype=torch.float64)
    for loss in (
        AnnealingLoss()(student, teacher, 0.5),
        HintonKDLoss(2.0, 0.5)(student, teacher, torch.tensor([0, 1, 2, 0])),
    ):
        assert loss.dtype == torch.float32
        loss.backward()
    assert student.grad is not None and student.grad.dtype == torch.float32


def test_the_losses_raise_no_warnings():
    # Called every training step: a warning here would flood the worker's log.
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AnnealingLoss()(student, teacher, 0.5)
        HintonKDLoss(2.0, 0.5)(student, teacher, torch.tensor([0, 1, 2, 0]))
