"""A multilayer perceptron that flattens any input: features, signals or images."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from akd_core.models.registry import OptionError, positive_int, register_model


class MLP(nn.Module):
    """Flatten, then Linear-ReLU per hidden size, then a linear head."""

    def __init__(self, in_features: int, num_classes: int, hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, *input_shape) -> (B, K) logits
        return self.net(torch.flatten(x, 1))


def _hidden_sizes(value: Any) -> list[int]:
    if not isinstance(value, list | tuple) or len(value) > 16:
        raise OptionError(
            "hidden", f"got {value!r}; expected a list of up to 16 layer sizes, e.g. [128, 64]"
        )
    return [positive_int("hidden", h, maximum=65536) for h in value]


@register_model("mlp")
def mlp(
    input_shape: tuple[int, ...], num_classes: int, *, hidden: list[int] | None = None
) -> nn.Module:
    """An MLP with hidden layer sizes `hidden` (default [128, 64]); [] gives a linear model."""
    sizes = [128, 64] if hidden is None else _hidden_sizes(hidden)
    return MLP(math.prod(input_shape), num_classes, sizes)
