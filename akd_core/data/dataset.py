"""The dataset handed to training: three splits, labels and preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["image", "features", "signal"]
Placement = Literal["resident", "streamed"]


@dataclass(frozen=True, eq=False)
class RawData:
    """What a reader returns: arrays as stored, before splitting and normalisation."""

    x: np.ndarray  # (N, ...) uint8 or float; `scale` divides it into [0, 1] when set
    y: np.ndarray  # (N,) label values (ints or strings) until labels.encode_labels maps them
    classes: list[str]  # names the labels index; [] when the label values are the names
    kind: Kind
    source: str  # file or builtin name, for error messages
    scale: float | None = None  # e.g. 255.0 for uint8 pixels
    # Splits the data brings along ("val", "test"): (x, y) pairs like the above.
    given: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def split_sizes(y_train: np.ndarray, y_val: np.ndarray, y_test: np.ndarray) -> dict[str, int]:
    """Rows per split, as the reports' dataset summary gives them."""
    return {"train": int(len(y_train)), "val": int(len(y_val)), "test": int(len(y_test))}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/val/test splits as float32 inputs and int64 labels, ready for training.

    With placement "resident" the x arrays are float32 in memory. With "streamed" they are
    data.views.SplitView objects over the memory-mapped data cache: read-only and numpy-like
    (len, shape, dtype, slices and index arrays give float32 arrays), read batch by batch.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    kind: Kind
    input_shape: tuple[int, ...]
    normalization: dict[str, Any]
    fingerprint: str
    source_name: str
    # The val and test splits as stored (before scaling and normalisation; images NCHW),
    # which a raw-input student (export.raw_input) is checked on.
    stored_val: np.ndarray | None = None
    stored_test: np.ndarray | None = None
    scale: float | None = None  # stored value / scale = the value in [0, 1] (pixels)
    source_sha256: str | None = None  # of the dataset file; None for builtin data
    placement: Placement = "resident"
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (skip_bad_files)

    @property
    def num_classes(self) -> int:
        """How many classes the labels index (0 .. num_classes - 1)."""
        return len(self.classes)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for reports: sizes per split, classes and input shape."""
        return {
            "source": self.source_name,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "sizes": split_sizes(self.y_train, self.y_val, self.y_test),
            "normalization": self.normalization,
            "fingerprint": self.fingerprint,
            "sha256": self.source_sha256,
            "placement": self.placement,
            "skipped_files": len(self.skipped),
        }
