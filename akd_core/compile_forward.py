"""`torch.compile` of the student's training forward, on, off, or chosen by measurement.

Only the forward used by the training step is compiled. The trainer keeps the eager module
for everything else (evaluation, checkpoints, export), so state_dict keys never carry the
`_orig_mod.` prefix of a compiled wrapper and the exported graph is the eager model's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Forward + backward passes timed per variant after one untimed warm-up (the compile itself).
TIMED_STEPS = 5

AmpContext = Callable[[], contextlib.AbstractContextManager[Any]]
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ForwardChoice:
    """Which forward an arm trained with and why; report.json's `student.compile` or `baselines.<arm>.compile`."""

    mode: str  # optimizer.compile as asked: auto | on | off
    compiled: bool
    reason: str
    eager_ms: float | None = None  # per forward + backward step, when measured
    compiled_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The choice as report.json stores it."""
        return dict(self.__dict__)


def choose_forward(
    model: nn.Module,
    mode: str,
    device: torch.device,
    sample: Callable[[], torch.Tensor],
    amp: AmpContext = contextlib.nullcontext,
) -> tuple[Forward, ForwardChoice]:
    """The forward to train with: the eager model, or its compiled twin (same parameters)."""
    if mode == "off":
        return model, ForwardChoice(mode, False, "optimizer.compile is off")
    compiled: Forward = torch.compile(model)  # lazy: nothing compiles before the first call
    if mode == "on":
        return compiled, ForwardChoice(mode, True, "optimizer.compile is on")
    if device.type != "cuda":
        # Inductor's CPU code takes tens of seconds to build and small students gain little.
        return model, ForwardChoice(mode, False, "auto: eager on CPU (compile is timed on CUDA)")
    xb = sample()
    eager_ms = time_steps(model, model, xb, device, amp)
    try:
        compiled_ms = time_steps(model, compiled, xb, device, amp)
    except Exception as exc:  # noqa: BLE001 -- dynamo/inductor raise many types; auto never fails
        why = f"auto: compiling failed ({type(exc).__name__}), eager"
        return model, ForwardChoice(mode, False, why, round(eager_ms, 3))
    faster = compiled_ms < eager_ms
    choice = ForwardChoice(
        mode,
        faster,
        f"auto: compiled {'faster' if faster else 'not faster'} than eager, as measured",
        round(eager_ms, 3),
        round(compiled_ms, 3),
    )
    return (compiled if faster else model), choice


def time_steps(
    model: nn.Module,
    forward: Forward,
    xb: torch.Tensor,
    device: torch.device,
    amp: AmpContext = contextlib.nullcontext,
    steps: int = TIMED_STEPS,
) -> float:
    """Milliseconds per forward + backward step of `forward` on `xb`; leaves no trace on the
    model (gradients dropped, BatchNorm statistics and the RNG streams restored)."""
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            _forward_backward(forward, xb, amp)  # warm-up: the compile, cuDNN's autotuner
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                _forward_backward(forward, xb, amp)
            _sync(device)
            seconds = time.perf_counter() - start
    finally:  # also when compiling fails: the model is left as it was given
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
    return 1000.0 * seconds / steps


def _forward_backward(forward: Forward, xb: torch.Tensor, amp: AmpContext) -> None:
    with amp():
        out = forward(xb).float()
    out.square().mean().backward()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
