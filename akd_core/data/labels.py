"""Labels read as values and mapped to class ids 0..K-1 (K is never taken from the largest label)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from akd_core.data.checks import fail
from akd_core.data.dataset import RawData
from akd_core.errors import DatasetError

_SHOWN = 10  # values quoted in an error message


def _split_names(raw: RawData) -> list[str]:
    return ["y", *(f"y_{name}" for name in raw.given)]


def _values(y: np.ndarray, source: str, name: str) -> np.ndarray:
    """Labels as int64 (integer-valued numbers) or str, refusing other kinds and shapes."""
    if y.ndim != 1:
        raise fail(source, f"{name} must be one label per sample, shape (N,), not {y.shape}")
    if len(y) == 0:
        raise fail(source, f"{name} is empty; the dataset has no samples")
    if y.dtype.kind in "US":
        return y.astype(str)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise fail(source, f"{name} holds non-integer numbers; labels are integers or strings")
        if np.abs(y).max() >= 2**63:
            raise fail(source, f"{name} holds a label too large for a 64-bit integer")
        return y.astype(np.int64)
    if y.dtype.kind not in "iu" or (y.dtype.kind == "u" and y.max() >= 2**63):
        raise fail(source, f"{name} has dtype {y.dtype}; labels must be integers or strings")
    return y.astype(np.int64)


def _check_indices(ys: list[np.ndarray], k: int, source: str, why: str, field: str) -> None:
    """Every label is an integer index below k; the error names the first value outside."""
    for y in ys:
        if y.dtype.kind != "i":
            raise DatasetError(
                f"dataset {source!r}: label {str(y[0])!r} is not a class index; {why}, so "
                f"labels must be integers 0..{k - 1}",
                field=field,
            )
        outside = y[(y < 0) | (y >= k)]
        if outside.size:
            raise DatasetError(
                f"dataset {source!r}: label {int(outside[0])} is outside 0..{k - 1}; {why}",
                field=field,
            )


def _check_count(k: int, source: str, max_classes: int) -> None:
    if k > max_classes:
        raise fail(source, f"has {k} classes, past the server's limit of {max_classes}")


def encode_labels(raw: RawData, declared: int | None, max_classes: int) -> RawData:
    """RawData whose labels are class ids 0..K-1 (every split) and whose classes are K names.

    - Names given by the data (npz `classes`, CIFAR meta, folder names): labels index them.
    - `declared` (dataset.num_classes): labels must be integers 0..declared-1.
    - Otherwise K is the number of distinct labels over all splits, ordered numerically for
      numbers (so labels 0..K-1 keep their ids) and by name for strings; K <= max_classes.
    """
    source = raw.source
    ys = [_values(y, source, n) for y, n in zip(_all_labels(raw), _split_names(raw), strict=True)]
    if raw.classes:
        k = len(raw.classes)
        if declared is not None and declared != k:
            raise DatasetError(
                f"dataset.num_classes is {declared} but dataset {source!r} names {k} classes",
                field="dataset.num_classes",
            )
        _check_count(k, source, max_classes)
        _check_indices(ys, k, source, f"the dataset names {k} classes", "dataset.source")
        return _with_labels(raw, ys, list(raw.classes))
    if declared is not None:
        _check_count(declared, source, max_classes)
        why = f"dataset.num_classes is {declared}"
        _check_indices(ys, declared, source, why, "dataset.num_classes")
        return _with_labels(raw, ys, [str(i) for i in range(declared)])
    if len({y.dtype.kind for y in ys}) > 1:
        raise fail(source, "mixes numeric and string labels across splits; use one kind")
    # np.unique sorts: numerically for int64, by code point for strings (deterministic).
    values = np.unique(np.concatenate(ys))
    if len(values) > max_classes:
        shown = ", ".join(str(v) for v in values[:_SHOWN])
        raise fail(
            source,
            f"has {len(values)} distinct labels ({shown}, ...), past the server's limit of "
            f"{max_classes} classes; labels are class names, not regression targets",
        )
    ids = [np.searchsorted(values, y).astype(np.int64) for y in ys]
    return _with_labels(raw, ids, [str(v) for v in values])


def _all_labels(raw: RawData) -> list[np.ndarray]:
    return [raw.y, *(y for _, y in raw.given.values())]


def _with_labels(raw: RawData, ys: list[np.ndarray], classes: list[str]) -> RawData:
    given = {
        split: (x, y.astype(np.int64))
        for (split, (x, _)), y in zip(raw.given.items(), ys[1:], strict=True)
    }
    return replace(raw, y=ys[0].astype(np.int64), classes=classes, given=given)
