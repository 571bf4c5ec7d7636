"""Top-1 accuracy of a student on a split, batched: the figure each epoch's best is chosen on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from akd_core.compile_forward import AmpContext


@torch.no_grad()
def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    amp: AmpContext = contextlib.nullcontext,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Top-1 accuracy of `model` in eval mode, batched (x may live on another device).

    With `decode`, x holds row ids of streamed data and each batch is decoded first.
    """
    model.eval()
    device = next(model.parameters()).device
    correct = torch.zeros((), dtype=torch.int64, device=device)  # summed there: no sync per batch
    for i in range(0, len(x), batch_size):
        # Splits too large for the GPU stay in pinned host memory: move each batch over.
        xb = x[i : i + batch_size]
        xb = (decode(xb) if decode is not None else xb).to(device, non_blocking=True)
        yb = y[i : i + batch_size].to(device, non_blocking=True)
        with amp():
            pred = model(xb).argmax(dim=-1)
        correct += (pred == yb).sum()
    return int(correct) / max(len(x), 1)
