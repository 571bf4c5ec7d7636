"""The loss of a training step by phase (annealing, kd or ce), and its micro-batch rows."""

from __future__ import annotations

import torch

from akd_core.losses import AnnealingLoss, CrossEntropyLoss, HintonKDLoss
from akd_core.spec import KDSpec


class PhaseLosses:
    """The loss each kind of phase trains on: annealing (Phase 1), Hinton KD, cross-entropy."""

    def __init__(self, kd: KDSpec) -> None:
        self.anneal = AnnealingLoss()
        self.kd = HintonKDLoss(kd.temperature, kd.alpha)
        self.ce = CrossEntropyLoss()

    def __call__(
        self,
        loss: str,
        out: torch.Tensor,
        yb: torch.Tensor,
        tb: torch.Tensor | None,
        phi_T: float | None,
    ) -> torch.Tensor:
        """The mean loss of (b, K) student logits `out` against labels and teacher logits `tb`.

        `loss` is the phase's kind ("anneal", "kd" or "ce"); `phi_T` is Phi(T) of the epoch
        (annealing only); `tb` is None only for "ce", which uses the labels alone.
        """
        if loss == "ce":
            return self.ce(out, yb)
        assert tb is not None
        if loss == "anneal":
            return self.anneal(out, tb, phi_T)
        return self.kd(out, tb, yb)


def micro_slices(n: int, micro: int) -> list[slice]:
    """Row ranges of a batch of n rows in micro-batches of `micro`; a trailing micro-batch of
    one row joins the one before it (BatchNorm cannot train on a single sample)."""
    starts = list(range(0, n, micro))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], n], strict=True)]
