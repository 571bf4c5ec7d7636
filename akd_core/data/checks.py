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


def check_classes(
    y_train: np.ndarray, num_classes: int, source: str, others: list[np.ndarray]
) -> None:
    """Every label is below num_classes, there are 2+ classes and each has a training sample."""
    if num_classes < 2:
        raise fail(source, f"found {num_classes} class; classification needs at least 2")
    for labels in [y_train, *others]:
        if labels.size and labels.max() >= num_classes:
            raise fail(
                source,
                f"label {int(labels.max())} is out of range for {num_classes} classes (0..{num_classes - 1})",
            )
    missing = np.setdiff1d(np.arange(num_classes), y_train)
    if missing.size:
        shown = ", ".join(str(int(c)) for c in missing[:10])
        raise fail(
            source, f"class(es) {shown} have no training sample; every class 0..K-1 must appear"
        )
