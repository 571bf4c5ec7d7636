"""CIFAR ResNets (He et al. 2016, section 4.2): resnet8 ... resnet110, depth = 6n + 2.

Three stages of n basic blocks with `width`, 2*`width` and 4*`width` channels (16/32/64 by
default), the second and third stages starting with stride 2. Shortcuts use option B: a
1x1 convolution + BatchNorm where the shape changes, identity elsewhere. This matches the
parameter counts of the Annealing-KD / TAKD code (resnet8 ~ 78k, resnet110 ~ 1.7M for 10
classes). Global average pooling makes the model work for any image size >= 8 and any
number of input channels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from akd_core.models.names import RESNET_DEPTHS
from akd_core.models.registry import positive_int, register_model


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv, three stages of `blocks_per_stage` basic blocks, global pool, linear head."""

    def __init__(
        self, in_channels: int, num_classes: int, blocks_per_stage: int, width: int = 16
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, K) logits
        h = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(h), 1))


def build_resnet(
    input_shape: tuple[int, ...], num_classes: int, *, depth: int, width: int = 16
) -> nn.Module:
    """A CIFAR ResNet of `depth` = 6n + 2 layers for (C, H, W) images."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    width = positive_int("width", width, maximum=1024)
    return CifarResNet(input_shape[0], num_classes, (depth - 2) // 6, width)


def _resnet_builder(depth: int) -> Callable[..., nn.Module]:
    def builder(input_shape: tuple[int, ...], num_classes: int, *, width: int = 16) -> nn.Module:
        return build_resnet(input_shape, num_classes, depth=depth, width=width)

    builder.__doc__ = f"CIFAR ResNet-{depth} ({(depth - 2) // 6} blocks per stage)."
    return builder


for _depth in RESNET_DEPTHS:
    register_model(f"resnet{_depth}")(_resnet_builder(_depth))
