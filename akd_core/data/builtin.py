"""Datasets shipped with installed packages (no download): `builtin:<name>` sources."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from akd_core.data.dataset import RawData
from akd_core.errors import DatasetError


def _digits() -> RawData:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, read from disk

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), values 0..16
    return RawData(
        x,
        bunch.target.astype(np.int64),
        [str(c) for c in bunch.target_names],
        "image",
        "builtin:digits",
        16.0,
    )


BUILTINS: dict[str, Callable[[], RawData]] = {"digits": _digits}
# (sample shape, classes) of each builtin, known without loading it (checks at submit).
BUILTIN_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {"digits": ((1, 8, 8), 10)}
# Samples of each builtin (all of them; the run carves its splits), for the memory estimate.
BUILTIN_SAMPLES: dict[str, int] = {"digits": 1797}


def load_builtin(name: str) -> RawData:
    """The named builtin dataset as RawData, or DatasetError listing those available."""
    if name not in BUILTINS:
        raise DatasetError(
            f"unknown builtin dataset {name!r}; available: {', '.join(sorted(BUILTINS))}",
            field="dataset.source",
        )
    return BUILTINS[name]()
