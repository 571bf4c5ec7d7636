"""Training-time augmentation on batches of images (the only torch user in akd_core.data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from akd_core.errors import SpecError

# dataset.augment value -> whether it draws random numbers (and so changes each epoch).
AUGMENTS: dict[str, bool] = {"none": False, "crop-flip": True}


def is_random(augment: str) -> bool:
    """Whether the named augmentation is random (so teacher logits cannot be cached once)."""
    if augment not in AUGMENTS:
        raise SpecError(
            f"unknown augmentation {augment!r}; accepted: {', '.join(AUGMENTS)}",
            field="dataset.augment",
        )
    return AUGMENTS[augment]


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by `pad` pixels, then random horizontal flip, per sample.

    Draws, in order: row offsets (B,), column offsets (B,), flip coins (B,), all from
    `generator` on its own device, so a seeded generator gives the same batch every time.
    """
    if x.ndim != 4:
        raise SpecError(
            f"dataset.augment 'crop-flip' needs image batches (B, C, H, W); got shape "
            f"{tuple(x.shape)}; use augment 'none' for feature or signal data",
            field="dataset.augment",
        )
    b, _, h, w = x.shape
    gen_device = generator.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=gen_device).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=gen_device).to(x.device)
    flip = torch.randint(0, 2, (b,), generator=generator, device=gen_device).to(x.device).bool()
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p), zeros outside
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H) source rows
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + ox[:, None]  # (B, W) source cols
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing on (B, H', W', C) gathers every sample's window in one op: (B, H, W, C).
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()
