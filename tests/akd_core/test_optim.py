"""Golden values for the optimizers and the per-phase learning-rate schedules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from akd_core.optim import build_optimizer, build_scheduler, lr_factor
from akd_core.spec import OptimizerSpec


def test_step_schedule_drops_at_half_and_three_quarters_per_epoch():
    # 8 epochs of 3 steps: epochs 0-3 x1, 4-5 x0.1, 6-7 x0.01; constant within an epoch.
    got = [lr_factor("step", s, 3, 8) for s in range(24)]
    assert got == [1.0] * 12 + [0.1] * 6 + [0.01] * 6
    # 10 epochs: 50% = epoch 5, 75% = epoch 7.5 -> epochs 5-7 at x0.1, 8-9 at x0.01.
    assert [lr_factor("step", e, 1, 10) for e in range(10)] == [1.0] * 5 + [0.1] * 3 + [0.01] * 2


def test_cosine_schedule_goldens():
    # 0.5 (1 + cos(pi s / 8)) for 4 epochs of 2 steps, worked out by hand.
    golden = [1.0, 0.961940, 0.853553, 0.691342, 0.5, 0.308658, 0.146447, 0.038060, 0.0]
    got = [lr_factor("cosine", s, 2, 4) for s in range(9)]
    assert got == pytest.approx(golden, abs=1e-6)
    assert lr_factor("cosine", 50, 2, 4) == pytest.approx(0.0)  # past the end it stays at 0


def test_constant_schedule_and_unknown_names():
    assert {lr_factor("constant", s, 3, 4) for s in range(12)} == {1.0}
    with pytest.raises(ValueError, match="step, cosine, linear or constant"):
        lr_factor("exponential", 0, 1, 1)


def test_optimizer_defaults_follow_the_paper_and_adamw():
    model = nn.Linear(4, 2)
    sgd = build_optimizer(model, OptimizerSpec(name="sgd"))
    assert isinstance(sgd, torch.optim.SGD)
    g = sgd.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.1, 0.9, 1e-4)
    adamw = build_optimizer(model, OptimizerSpec())
    assert isinstance(adamw, torch.optim.AdamW)
    g = adamw.param_groups[0]
    assert (g["lr"], g["weight_decay"]) == (1e-2, 1e-2)
    mine = build_optimizer(model, OptimizerSpec(name="sgd", lr=0.05, momentum=0.5, weight_decay=0))
    g = mine.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.05, 0.5, 0.0)


def test_schedule_names_resolve_per_optimizer():
    assert OptimizerSpec(name="sgd").resolved_schedule == "step"
    assert OptimizerSpec().resolved_schedule == "cosine"
    assert OptimizerSpec(name="sgd", schedule="cosine").resolved_schedule == "cosine"


def _lrs(spec: OptimizerSpec, steps: int, start=None) -> tuple[list[float], dict]:
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, spec)
    sched = build_scheduler(opt, spec, epochs=4, steps_per_epoch=2)
    if start is not None:
        opt.load_state_dict(start[0])
        sched.load_state_dict(start[1])
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen, (opt.state_dict(), sched.state_dict())


def test_scheduler_state_resumes_at_the_same_step():
    spec = OptimizerSpec(name="sgd", lr=0.1)
    straight, _ = _lrs(spec, 8)
    assert straight == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    first, state = _lrs(spec, 3)
    rest, _ = _lrs(spec, 5, start=state)
    assert first + rest == straight
