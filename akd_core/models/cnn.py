"""Plain CNNs: conv-BN-ReLU blocks with 2x2 max-pooling between stages, global pool, linear head.

- cnn-tiny:  stages (w, 2w), one block each, w = 8 by default (~1.5k params on 1x8x8 digits).
- cnn-small: stages (w, 2w, 4w), one block each, w = 16 by default (~24k params, 3x32x32).
- cnn:       stages (w, 2w, 4w), two blocks each, w = 32 by default (~290k params, 3x32x32).
Pooling happens only between stages (at most twice), so images of side >= 8 always fit.
"""

from __future__ import annotations

import torch
from torch import nn

from akd_core.models.registry import positive_int, register_model


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class PlainCNN(nn.Module):
    """Stages of conv-BN-ReLU blocks; max-pool between stages; global average pool; linear."""

    def __init__(
        self, in_channels: int, num_classes: int, channels: tuple[int, ...], blocks_per_stage: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(channels):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(blocks_per_stage):
                layers.append(_block(c_in, c_out))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, K) logits
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _plain(
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int,
    multipliers: tuple[int, ...],
    blocks: int,
) -> nn.Module:
    w = positive_int("width", width, maximum=1024)
    return PlainCNN(input_shape[0], num_classes, tuple(m * w for m in multipliers), blocks)


@register_model("cnn-tiny")
def cnn_tiny(input_shape: tuple[int, ...], num_classes: int, *, width: int = 8) -> nn.Module:
    """Two conv blocks (width, 2*width): small enough for 8x8 digits."""
    return _plain(input_shape, num_classes, width, (1, 2), 1)


@register_model("cnn-small")
def cnn_small(input_shape: tuple[int, ...], num_classes: int, *, width: int = 16) -> nn.Module:
    """Three conv blocks (width, 2*width, 4*width)."""
    return _plain(input_shape, num_classes, width, (1, 2, 4), 1)


@register_model("cnn")
def cnn(input_shape: tuple[int, ...], num_classes: int, *, width: int = 32) -> nn.Module:
    """Three stages of two conv blocks each (width, 2*width, 4*width)."""
    return _plain(input_shape, num_classes, width, (1, 2, 4), 2)
