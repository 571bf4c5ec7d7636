"""The distillation losses, one class per published formula (golden values in tests)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AnnealingLoss(nn.Module):
    """Annealing-KD Phase 1 (Jafari et al., EACL 2021, eq. 4).

    L1 = MSE(z_s, Phi(T) * z_t) on raw logits: no softmax, no temperature on the student,
    no hard-label term. Mean over batch and classes, as `F.mse_loss` in the official code.
    """

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, phi: float
    ) -> torch.Tensor:
        """Phase-1 loss of (B, K) student logits against the teacher's, scaled by Phi(T)."""
        # (B, K) student logits regress onto (B, K) scaled teacher logits.
        target = teacher_logits.detach().to(student_logits.dtype) * phi
        return F.mse_loss(student_logits, target)


class HintonKDLoss(nn.Module):
    """Hinton et al. 2015 KD: (1 - alpha) CE(z_s, y) + alpha T^2 KL(p_t^T || p_s^T).

    KL uses reduction="batchmean" (the per-sample KL averaged over the batch); "mean" would
    silently divide by the number of classes as well.
    """

    def __init__(self, temperature: float, alpha: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.alpha = alpha

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """KD loss of (B, K) student logits given the teacher's and the (B,) labels."""
        T = self.temperature
        log_p_s = F.log_softmax(student_logits / T, dim=-1)
        log_p_t = F.log_softmax(teacher_logits.detach().to(student_logits.dtype) / T, dim=-1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        ce = F.cross_entropy(student_logits, labels)
        return (1.0 - self.alpha) * ce + self.alpha * (T * T) * kl


class CrossEntropyLoss(nn.Module):
    """Hard-label cross-entropy: Annealing-KD Phase 2 and the student-only baseline."""

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (B, K) logits against (B,) int64 labels."""
        return F.cross_entropy(student_logits, labels)
