"""A multilayer perceptron that flattens any input: features, signals or images."""

from __future__ import annotations

import math

import torch
from torch import nn

from akd_core.models.names import hidden_sizes
from akd_core.models.registry import register_model


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


@register_model("mlp")
def mlp(
    input_shape: tuple[int, ...], num_classes: int, *, hidden: list[int] | None = None
) -> nn.Module:
    """An MLP with hidden layer sizes `hidden` (default [128, 64]); [] gives a linear model."""
    sizes = [128, 64] if hidden is None else hidden_sizes(hidden)
    return MLP(math.prod(input_shape), num_classes, sizes)
