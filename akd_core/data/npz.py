"""NumPy .npz datasets: x, y and optional x_val/y_val, x_test/y_test and class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from akd_core.archives import ARCHIVE_READ_ERRORS, check_archive
from akd_core.data.checks import check_inputs, fail
from akd_core.data.dataset import Kind, RawData
from akd_core.data.peek import sample_shape
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

# What np.load raises on a damaged .npz (bad headers, inflate errors) or one too big to hold.
_NPZ_ERRORS: tuple[type[Exception], ...] = (ValueError, MemoryError, *ARCHIVE_READ_ERRORS)
SPLIT_KEYS = {"val": ("x_val", "y_val"), "test": ("x_test", "y_test")}


def _layout(x: np.ndarray, source: str, name: str) -> tuple[np.ndarray, Kind]:
    """Arrange x as (N, F), (N, C, L) or (N, C, H, W), turning (N, H, W, C) images around."""
    if x.ndim == 2:
        return x, "features"
    if x.ndim == 3:
        return x, "signal"
    if x.ndim == 4:
        if sample_shape(x.shape) != x.shape[1:]:  # (N, H, W, C) images
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "image"
        return x, "image"
    raise fail(
        source,
        f"{name} has shape {x.shape}; expected N x F features, N x C x L signals or "
        "N x C x H x W (or N x H x W x C) images",
    )


def read_npz(path: Path, spec: DatasetSpec, work_dir: Path, limits: Limits) -> RawData:
    """Read an .npz (no pickled objects) into RawData, checking shapes and labels."""
    source = path.name
    # An .npz is a zip: refuse links, escapes, bombs and oversized totals before numpy
    # inflates it into memory (its own total and ratio caps: see Limits.for_kind).
    check_archive(path, limits.for_kind("npz"))
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except _NPZ_ERRORS as exc:
        raise fail(source, f"cannot be read as .npz without pickles ({exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise fail(source, f"has no array {key!r}; found {sorted(arrays)} (need x and y)")
    x, kind = _layout(arrays["x"], source, "x")
    y = arrays["y"]  # label values; akd_core.data.labels maps them to class ids
    check_inputs(x, y, source, "x")
    given: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, (xk, yk) in SPLIT_KEYS.items():
        if (xk in arrays) != (yk in arrays):
            raise fail(source, f"has only one of {xk!r} and {yk!r}; give both or neither")
        if xk not in arrays:
            continue
        xs, _ = _layout(arrays[xk], source, xk)
        if xs.shape[1:] != x.shape[1:]:
            raise fail(source, f"{xk} has samples of shape {xs.shape[1:]} but x has {x.shape[1:]}")
        ys = arrays[yk]
        check_inputs(xs, ys, source, xk)
        given[split] = (xs, ys)
    classes = _class_names(arrays, source)
    # Only uint8 images are pixels with a known range; other arrays are used as stored.
    scale = 255.0 if kind == "image" and x.dtype == np.uint8 else None
    return RawData(x, y, classes, kind, source, scale, given)


def _class_names(arrays: dict[str, np.ndarray], source: str) -> list[str]:
    """The names in `classes` (labels then index them), or [] when labels name themselves."""
    if "classes" not in arrays:
        return []
    names = arrays["classes"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise fail(source, "classes must be a 1-D array of strings (one name per class)")
    return [str(n) for n in names.astype(str)]
