"""Optimizers and per-phase learning-rate schedules (restarted at the start of each phase)."""

from __future__ import annotations

import math

import torch
from torch import nn

from akd_core.spec import OptimizerSpec

WARMUP_FRACTION = 0.1  # share of a phase's steps the linear schedule warms up over


def build_optimizer(
    model: nn.Module, spec: OptimizerSpec, fused: bool = False
) -> torch.optim.Optimizer:
    """A fresh optimizer for one phase: SGD (paper's CIFAR recipe) or AdamW; `fused` asks
    for the single-kernel implementation (CUDA), None leaves torch's default (foreach)."""
    lr, wd, f = spec.resolved_lr, spec.resolved_weight_decay, fused or None
    if spec.name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=spec.momentum, weight_decay=wd, fused=f
        )
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, fused=f)


def lr_factor(schedule: str, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of the base LR at a global step of a phase of `epochs` epochs."""
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        # Paper: lr x0.1 at 50% and x0.01 at 75% of each phase, changed per epoch.
        epoch = step // max(steps_per_epoch, 1)
        if epoch < epochs * 0.5:
            return 1.0
        return 0.1 if epoch < epochs * 0.75 else 0.01
    if schedule == "linear":
        # GLUE recipe: warm up over the first WARMUP_FRACTION of the phase, then decay to 0.
        total = max(epochs * steps_per_epoch, 1)
        warmup = max(1, round(total * WARMUP_FRACTION))
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(total - warmup, 1))
    if schedule == "cosine":
        total = max(epochs * steps_per_epoch, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    raise ValueError(f"unknown schedule {schedule!r}; choose step, cosine, linear or constant")


def build_scheduler(
    optimizer: torch.optim.Optimizer, spec: OptimizerSpec, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR for one phase; its state_dict makes resume exact."""
    schedule = spec.resolved_schedule
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, steps_per_epoch, epochs)
    )
