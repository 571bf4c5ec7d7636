"""The token batch layout shared by teacher, students and trainer: (B, C, L) int64.

Channel 0 holds input_ids, 1 attention_mask, and 2 token_type_ids where the tokenizer
makes them. One stacked tensor lets the trainer index, shuffle and move text batches like
image batches; models split it back into keyword arguments at their boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # not at run time: the ONNX teacher's process splits numpy batches, no torch
    import torch

Batch = TypeVar("Batch", "torch.Tensor", np.ndarray)

CHANNELS = ("input_ids", "attention_mask", "token_type_ids")


def split_batch(x: Batch, trim: bool = True) -> dict[str, Batch]:
    """(B, C, L) -> {input_ids, attention_mask[, token_type_ids]}, trimmed to the longest row.

    Trimming the padding every row of the batch shares is the dynamic padding: a batch of
    short texts costs short sequences even though the stored split is padded to its longest.
    """
    if trim and x.shape[-1] > 1:
        longest = int(x[:, 1].sum(1).max()) if x.shape[0] else 1  # torch and numpy alike
        x = x[..., : max(longest, 1)]
    return {name: x[:, i] for i, name in enumerate(CHANNELS[: x.shape[1]])}
