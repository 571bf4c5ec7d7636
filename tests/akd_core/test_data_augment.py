"""crop_flip: the random crop + flip augmentation on image batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from akd_core.data.augment import crop_flip, is_random
from akd_core.errors import SpecError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference(x: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Sample by sample, the same draws: row offsets, column offsets, then flip coins."""
    b, _, h, w = x.shape
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flip = torch.randint(0, 2, (b,), generator=generator)
    out = []
    for i in range(b):
        padded = F.pad(x[i], (pad, pad, pad, pad))
        crop = padded[:, oy[i] : oy[i] + h, ox[i] : ox[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_crop_flip_matches_per_sample_reference() -> None:
    x = torch.arange(6 * 2 * 5 * 4, dtype=torch.float32).reshape(6, 2, 5, 4) + 1
    got = crop_flip(x, _gen(3), pad=2)
    assert got.shape == x.shape
    torch.testing.assert_close(got, _reference(x, _gen(3), pad=2))


def test_crop_flip_is_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    x = torch.rand(16, 3, 8, 8, generator=_gen(0))
    a = crop_flip(x, _gen(7))
    torch.testing.assert_close(a, crop_flip(x, _gen(7)))
    assert not torch.equal(a, crop_flip(x, _gen(8)))


def test_without_padding_each_sample_is_itself_or_its_mirror() -> None:
    x = torch.rand(32, 1, 4, 4, generator=_gen(1))
    out = crop_flip(x, _gen(2), pad=0)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert bool(same.any()) and bool(mirrored.any())  # both outcomes occur in 32 coin flips


def test_shifted_crop_brings_in_zero_padding() -> None:
    # A 1x1 batch of ones: any offset other than the centre shows padded zeros.
    x = torch.ones(64, 1, 3, 3)
    out = crop_flip(x, _gen(4), pad=1)
    zeros_per_sample = (out == 0).flatten(1).sum(1)
    assert bool((zeros_per_sample > 0).any()) and bool((zeros_per_sample == 0).any())
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_is_random_knows_the_augmentations() -> None:
    assert is_random("crop-flip") and not is_random("none")
    with pytest.raises(SpecError, match="accepted: none, crop-flip") as info:
        is_random("mixup")
    assert info.value.field == "dataset.augment"


def test_crop_flip_refuses_non_image_batches() -> None:
    with pytest.raises(SpecError, match=r"\(B, C, H, W\); got shape \(4, 10\)"):
        crop_flip(torch.zeros(4, 10), _gen(0))
