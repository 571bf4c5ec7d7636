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


def crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    pad: int = 4,
    *,
    start: int = 0,
    batch_rows: int | None = None,
) -> torch.Tensor:
    """Random crop after zero padding by `pad` pixels, then random horizontal flip, per sample.

    `x` holds rows `start`..`start + len(x)` of a batch of `batch_rows` rows (default: the
    whole batch). Draws, in order: row offsets (N,), column offsets (N,), flip coins (N,) for
    all N = `batch_rows` rows, from `generator` on its own device; `x` gets its own rows' draws.
    So a seeded generator gives the same batch every time, and data-parallel ranks holding
    slices of one batch augment it exactly as one process holding all of it.
    """
    if x.ndim != 4:
        raise SpecError(
            f"dataset.augment 'crop-flip' needs image batches (B, C, H, W); got shape "
            f"{tuple(x.shape)}; use augment 'none' for feature or signal data",
            field="dataset.augment",
        )
    b, _, h, w = x.shape
    n = b if batch_rows is None else batch_rows
    if not 0 <= start <= n - b:
        raise ValueError(f"rows {start}..{start + b} are not inside a batch of {n} rows")
    mine = slice(start, start + b)  # the draws are cheap: every rank makes all N of each

    def draw(high: int) -> torch.Tensor:
        g = torch.randint(0, high, (n,), generator=generator, device=generator.device)
        return g[mine].to(x.device)

    oy, ox, flip = draw(2 * pad + 1), draw(2 * pad + 1), draw(2).bool()
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p), zeros outside
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H) source rows
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + ox[:, None]  # (B, W) source cols
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing on (B, H', W', C) gathers every sample's window in one op: (B, H, W, C).
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()
