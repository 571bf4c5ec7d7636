"""A split as training tensors: inputs placed whole, or row ids and a per-batch decoder.

Imports torch: the pipeline uses it; the torch-free loader and the API never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from akd_core.data.views import Decoder, SplitView
from akd_core.device import place

BatchDecoder = Callable[[torch.Tensor], torch.Tensor]


def split_tensor(x: np.ndarray, dev: torch.device) -> torch.Tensor:
    """A resident split's inputs placed on `dev`; a streamed split's row ids (host, int64)."""
    if isinstance(x, SplitView):
        return torch.from_numpy(x.rows)
    return place(torch.from_numpy(x), dev)


@dataclass(frozen=True)
class RowDecoder:
    """Gathered row ids -> float32 inputs; picklable (a data-parallel rank reopens the cache)."""

    read: Decoder

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.from_numpy(self.read(ids.cpu().numpy()))
        if ids.device.type == "cpu":
            return out
        return out.pin_memory().to(ids.device, non_blocking=True)


def batch_decoder(x: np.ndarray) -> BatchDecoder | None:
    """For a streamed split: gathered row ids -> float32 inputs (None for a resident split)."""
    if not isinstance(x, SplitView) or x.decode is None:
        return None
    return RowDecoder(x.decode)
