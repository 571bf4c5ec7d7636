"""Validation of loaded arrays: shapes, label values, finiteness and class coverage."""

from __future__ import annotations

import numpy as np

from akd_core.errors import DatasetError

FIELD = "dataset.source"


def fail(source: str, reason: str) -> DatasetError:
    """A DatasetError naming the dataset file and what is wrong with it."""
    return DatasetError(f"dataset {source!r}: {reason}", field=FIELD)


def check_inputs(x: np.ndarray, y: np.ndarray, source: str, name: str = "x") -> None:
    """Refuse a sample count that differs from the labels, non-numeric or non-finite inputs."""
    check_rows(len(x), x.dtype, len(y), source, name)
    check_finite(nonfinite_rows(x), source, name)


def check_rows(rows: int, dtype: np.dtype, labels: int, source: str, name: str = "x") -> None:
    """Refuse a sample count that differs from the labels, or non-numeric inputs."""
    if rows != labels:
        raise fail(source, f"{name} has {rows} samples but its labels have {labels}")
    if not (np.issubdtype(dtype, np.number) and dtype != np.bool_):
        raise fail(source, f"{name} has dtype {dtype}; inputs must be numeric")


def nonfinite_rows(x: np.ndarray) -> int:
    """How many samples (rows) of x hold a NaN or an infinity (0 for integer data)."""
    if not np.issubdtype(x.dtype, np.floating) or np.all(np.isfinite(x)):
        return 0
    return int(np.count_nonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)))


def check_finite(bad_rows: int, source: str, name: str = "x") -> None:
    """Refuse inputs of which `bad_rows` samples hold NaN or infinite values."""
    if bad_rows:
        raise fail(source, f"{name} holds NaN or infinite values in {bad_rows} sample(s)")


def check_classes(y_train: np.ndarray, classes: list[str], source: str) -> None:
    """There are 2+ classes and each has a training sample (labels are ids 0..K-1 by now)."""
    if len(classes) < 2:
        names = ", ".join(repr(c) for c in classes) or "none"
        raise fail(source, f"found {len(classes)} class ({names}); classification needs at least 2")
    missing = np.setdiff1d(np.arange(len(classes)), y_train)
    if missing.size:
        shown = ", ".join(repr(classes[int(c)]) for c in missing[:10])
        raise fail(
            source,
            f"class(es) {shown} have no training sample; every class must appear in the "
            "training data",
        )
