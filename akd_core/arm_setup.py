"""What an arm is given: its phase plan, its training tensors, and the run-wide progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from akd_core.spec import JobSpec

TeacherFn = Callable[[torch.Tensor], torch.Tensor]


class Augment(Protocol):
    """A random batch augmentation (akd_core.data.augment.crop_flip): `x` holds rows `start`..
    of a batch of `batch_rows` rows; draws are made for the whole batch, whatever the slice."""

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, *, start: int, batch_rows: int
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class PhasePlan:
    """One phase of an arm: its number in the history, job stage name, epochs and loss."""

    number: int  # 1 or 2 in the report history
    stage: str  # annealing | finetuning | training
    epochs: int
    loss: str  # anneal | kd | ce


def plan_arm(arm: str, spec: JobSpec) -> list[PhasePlan]:
    """The phases of an arm; every arm gets the same total epoch budget E1 + E2."""
    a = spec.annealing
    if arm == "annealing":
        phases = [PhasePlan(1, "annealing", a.phase1_epochs, "anneal")]
        if a.phase2_epochs:
            phases.append(PhasePlan(2, "finetuning", a.phase2_epochs, "ce"))
        return phases
    return [PhasePlan(1, "training", a.total_epochs, "kd" if arm == "kd" else "ce")]


@dataclass
class TrainData:
    """Tensors of one run; x on the training device, teacher logits cached or computed per batch."""

    x_train: torch.Tensor  # (N, *input_shape)
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    teacher_train: torch.Tensor | None = None  # (N, K) cached logits, None with random augmentation
    teacher_fn: TeacherFn | None = None  # runs the frozen teacher on an (augmented) batch
    augment: Augment | None = None
    # Streamed data: x_* hold row ids into the data cache and decode turns a gathered batch
    # of ids into float32 inputs (on the host); None when x_* are the inputs themselves.
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class Progress:
    """Run-wide progress over all arms' epochs, for the progress fraction and the ETA."""

    total_epochs: int
    start: float = 0.0
    end: float = 1.0
    done_epochs: int = 0
    seconds_per_epoch: float | None = None

    def fraction(self) -> float:
        """Share of the whole run done, in start..end."""
        return self.start + (self.end - self.start) * self.done_epochs / max(self.total_epochs, 1)

    def advance(self, epoch_seconds: float) -> None:
        """Count one finished epoch and fold its time into the smoothed epoch time."""
        self.done_epochs += 1
        s = self.seconds_per_epoch
        self.seconds_per_epoch = epoch_seconds if s is None else 0.7 * s + 0.3 * epoch_seconds

    def eta_s(self) -> float | None:
        """Seconds left at the smoothed epoch time; None before the first epoch ends."""
        if self.seconds_per_epoch is None:
            return None
        return self.seconds_per_epoch * (self.total_epochs - self.done_epochs)
