"""Fixed input layers: the preprocessing a student carries inside itself (and its ONNX graph).

The student takes exactly the teacher's input. What it needs for well-conditioned training
(standardisation with training-split statistics) is `Standardize`, a layer with buffers
only, so the optimizer never moves it and the exporter writes it into the graph. With
`export.raw_input`, `RawFront` goes in front at export time: it turns what a camera or a
file gives (uint8 NHWC pixels, raw features) into the teacher's input.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from akd_core.data.normalize import channel_stats


def _per_channel(values: np.ndarray | list[float], ndim: int) -> torch.Tensor:
    """(1, C, 1, ..., 1) float32: one value per channel (axis 1) of a batch of rank `ndim`."""
    v = torch.as_tensor(np.asarray(values, dtype=np.float32))
    return v.reshape((1, -1) + (1,) * (ndim - 2))


class Standardize(nn.Module):
    """(x - mean) / std per channel, with fixed (buffer, never trained) mean and std."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: np.ndarray | list[float], std: np.ndarray | list[float], ndim: int):
        super().__init__()
        self.register_buffer("mean", _per_channel(mean, ndim))
        self.register_buffer("std", _per_channel(std, ndim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class StudentWithInput(nn.Module):
    """A registry student behind its fixed input layer: it takes the teacher's input as is."""

    def __init__(self, net: nn.Module, input_layer: Standardize) -> None:
        super().__init__()
        self.input_layer = input_layer
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_layer(x))


def with_input_layer(net: nn.Module, x_train: np.ndarray) -> StudentWithInput:
    """Wrap `net` behind a Standardize fitted on x_train (the teacher's input, training split)."""
    mean, std = channel_stats(x_train)
    return StudentWithInput(net, Standardize(mean, std, x_train.ndim))


class RawFront(nn.Module):
    """Stored values -> the teacher's input: cast to float32, divide by `scale`,
    NHWC -> NCHW for images, then the dataset.normalize mean/std when there is one."""

    def __init__(
        self,
        ndim: int,
        channels_last: bool,
        scale: float | None,
        mean: list[float] | None,
        std: list[float] | None,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.scale = float(scale) if scale else None
        self.normalize = Standardize(mean, std, ndim) if mean is not None and std else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.scale is not None:
            x = x / self.scale
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        if self.normalize is not None:
            x = self.normalize(x)
        return x


class RawInputStudent(nn.Module):
    """The deployed raw-input student: RawFront, then the trained student."""

    def __init__(self, front: RawFront, student: nn.Module) -> None:
        super().__init__()
        self.front = front
        self.student = student

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(self.front(x))
