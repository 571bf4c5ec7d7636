"""What turns stored data into the teacher's input (`dataset.normalize`), fitted or given.

Stored data is first read as float32 with pixels scaled into [0, 1] (`RawData.scale`);
by default that is what the teacher takes. `train-mean-std` or an explicit mean/std then
normalise it per channel (images, signals) or per feature; the student takes the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from akd_core.errors import DatasetError
from akd_core.spec import NormalizeExplicit

if TYPE_CHECKING:
    from akd_core.data.views import SplitView

STD_FLOOR = 1e-6  # constant features would otherwise divide by zero


def channel_stats(x: np.ndarray | SplitView) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (floored) per channel or feature, i.e. over every axis but axis 1.

    A split read from the data cache is walked in chunks, so memory stays bounded.
    """
    if not isinstance(x, np.ndarray):
        from akd_core.data.views import chunked_stats  # views import this module

        mean, std = chunked_stats(x.chunks())
        return mean, np.maximum(std, STD_FLOOR)
    axes = (0, *range(2, x.ndim))
    # float64 sums: a float32 mean over millions of pixels drifts visibly.
    mean = x.mean(axis=axes, dtype=np.float64)
    std = np.maximum(x.std(axis=axes, dtype=np.float64), STD_FLOOR)
    return mean, std


def to_float(x: np.ndarray, scale: float | None) -> np.ndarray:
    """Stored values as a new float32 array, divided by `scale` (pixels into [0, 1]) when set."""
    out = x.astype(np.float32)  # always a copy, so normalising in place is safe
    if scale:
        out /= np.float32(scale)
    return out


def _broadcast(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2)).astype(np.float32)


def resolve_mode(setting: str | NormalizeExplicit | None) -> str:
    """The normalisation mode: explicit, or 'none' (data as stored) when the spec leaves it out."""
    if isinstance(setting, NormalizeExplicit):
        return "explicit"
    return "none" if setting is None else setting


def check_explicit(mean: list[float], std: list[float], channels: int, kind: str) -> None:
    """Refuse an explicit mean/std whose length is not one value per channel/feature."""
    if len(mean) != channels or len(std) != channels:
        unit = "feature" if kind == "features" else "channel"
        raise DatasetError(
            f"explicit mean ({len(mean)} values) and std ({len(std)} values) "
            f"must each have one value per {unit}; the data has {channels}",
            field="dataset.normalize",
        )


def fit(
    x_train: np.ndarray | SplitView, setting: str | NormalizeExplicit | None, kind: str
) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(mode, mean, std) per channel/feature; mean and std are None for mode 'none'."""
    mode = resolve_mode(setting)
    if isinstance(setting, NormalizeExplicit):
        check_explicit(setting.mean, setting.std, x_train.shape[1], kind)
        return mode, np.asarray(setting.mean, np.float64), np.asarray(setting.std, np.float64)
    if mode == "none":
        return mode, None, None
    mean, std = channel_stats(x_train)
    return mode, mean, std


def apply(x: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """Normalise x (float32) in place and return it."""
    if mean is None or std is None:
        return x
    x -= _broadcast(mean, x.ndim)
    x /= _broadcast(std, x.ndim)
    return x


def describe(
    mode: str,
    mean: np.ndarray | None,
    std: np.ndarray | None,
    scale: float | None,
    origin: str = "dataset.normalize",
) -> dict[str, Any]:
    """The JSON-ready record of the preprocessing, for reports and ONNX metadata."""
    return {
        "mode": mode,
        "mean": None if mean is None else [float(v) for v in mean],
        "std": None if std is None else [float(v) for v in std],
        # "0-1": stored values were divided by their full range (e.g. 255) before mean/std.
        "scale": "0-1" if scale else None,
        "scale_divisor": float(scale) if scale else None,
        # Where mean/std came from: the spec, or the teacher's own ONNX metadata.
        "origin": origin,
    }
