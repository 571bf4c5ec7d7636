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
    if len(x) != len(y):
        raise fail(source, f"{name} has {len(x)} samples but its labels have {len(y)}")
    if not (np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_):
        raise fail(source, f"{name} has dtype {x.dtype}; inputs must be numeric")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)))
        raise fail(source, f"{name} holds NaN or infinite values in {bad} sample(s)")


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
