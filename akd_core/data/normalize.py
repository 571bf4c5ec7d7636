"""Per-channel (images, signals) or per-feature normalisation fitted on the training split."""

from __future__ import annotations

from typing import Any

import numpy as np

from akd_core.errors import DatasetError
from akd_core.spec import NormalizeExplicit

STD_FLOOR = 1e-6  # constant features would otherwise divide by zero


def _axes(x: np.ndarray) -> tuple[int, ...]:
    # Reduce over samples and spatial/time axes, keeping axis 1 (channels or features).
    return (0, *range(2, x.ndim))


def _broadcast(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2)).astype(np.float32)


def resolve_mode(setting: str | NormalizeExplicit | None, kind: str) -> str:
    """The normalisation mode: explicit, or the per-kind default when the spec leaves it out."""
    if isinstance(setting, NormalizeExplicit):
        return "explicit"
    if setting is None:
        return "train-mean-std" if kind == "image" else "none"
    return setting


def fit(
    x_train: np.ndarray, setting: str | NormalizeExplicit | None, kind: str
) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(mode, mean, std) per channel/feature; mean and std are None for mode 'none'."""
    mode = resolve_mode(setting, kind)
    channels = x_train.shape[1]
    if isinstance(setting, NormalizeExplicit):
        if len(setting.mean) != channels or len(setting.std) != channels:
            unit = "feature" if kind == "features" else "channel"
            raise DatasetError(
                f"explicit mean ({len(setting.mean)} values) and std ({len(setting.std)} values) "
                f"must each have one value per {unit}; the data has {channels}",
                field="dataset.normalize",
            )
        return mode, np.asarray(setting.mean, np.float64), np.asarray(setting.std, np.float64)
    if mode == "none":
        return mode, None, None
    axes = _axes(x_train)
    # float64 sums: a float32 mean over millions of pixels drifts visibly.
    mean = x_train.mean(axis=axes, dtype=np.float64)
    std = np.maximum(x_train.std(axis=axes, dtype=np.float64), STD_FLOOR)
    return mode, mean, std


def apply(x: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """Normalise x (float32) in place and return it."""
    if mean is None or std is None:
        return x
    x -= _broadcast(mean, x.ndim)
    x /= _broadcast(std, x.ndim)
    return x


def describe(
    mode: str, mean: np.ndarray | None, std: np.ndarray | None, scale: float | None
) -> dict[str, Any]:
    """The JSON-ready record of the preprocessing, for reports and ONNX metadata."""
    return {
        "mode": mode,
        "mean": None if mean is None else [float(v) for v in mean],
        "std": None if std is None else [float(v) for v in std],
        # "0-1": values were divided by their full range (e.g. 255) before mean/std.
        "scale": "0-1" if scale else None,
    }
