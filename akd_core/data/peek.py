"""What a dataset's samples look like, read from headers only (for checks at submit, no torch).

Each answer is (sample shape or None, class count or None): None where the header does not
tell, and a shape only where it is certain (a smaller one never over-estimates a student).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from akd_core.formats import TEXT_SNIFF_BYTES
from akd_core.spec import DatasetSpec

Peek = tuple[tuple[int, ...] | None, int | None]
CIFAR_SHAPE = (3, 32, 32)


def sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's shape as training sees it: (N, H, W, C) images are turned to (C, H, W)."""
    if len(shape) == 4 and shape[1] not in (1, 3) and shape[3] in (1, 3):
        return (shape[3], shape[1], shape[2])
    return tuple(shape[1:])


def _npy_shape(zf: zipfile.ZipFile, member: str) -> tuple[int, ...] | None:
    import numpy as np  # numpy's .npy header reader; imported here to keep the API start light

    try:
        with zf.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError):
        return None
    return tuple(int(d) for d in shape)


def _peek_npz(path: Path) -> Peek:
    try:
        with zipfile.ZipFile(path) as zf:
            x = _npy_shape(zf, "x.npy")
            names = _npy_shape(zf, "classes.npy") if "classes.npy" in zf.namelist() else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None, None
    shape = sample_shape(x) if x is not None and len(x) >= 2 else None
    k = names[0] if names is not None and len(names) == 1 else None
    return shape, k


def _peek_csv(path: Path, spec: DatasetSpec) -> Peek:
    with path.open("rb") as fh:
        head = fh.read(TEXT_SNIFF_BYTES).decode("utf-8-sig", errors="ignore")
    lines = head.splitlines()
    if len(lines) < 2:  # the header may be cut: only a whole first line is trusted
        return None, None
    try:
        header = next(csv.reader(io.StringIO(lines[0])))
    except (csv.Error, StopIteration):
        return None, None
    if spec.label_column not in [h.strip() for h in header]:
        return None, None
    return (len(header) - 1,), None


def peek_dataset(spec: DatasetSpec, fmt: str | None, path: Path | None) -> Peek:
    """(sample shape, class count) of a dataset as far as its headers tell, without loading it."""
    scheme, _, name = spec.source.partition(":")
    if scheme == "builtin":
        from akd_core.data.builtin import BUILTIN_SHAPES

        shape, k = BUILTIN_SHAPES.get(name, (None, None))
        return shape, k
    if fmt == "cifar":
        return CIFAR_SHAPE, None
    if fmt == "imagefolder" and spec.image_size is not None:
        return (1, spec.image_size, spec.image_size), None  # grayscale: the smaller student
    if path is None or not path.is_file():
        return None, None
    if fmt == "npz":
        return _peek_npz(path)
    if fmt == "csv":
        return _peek_csv(path, spec)
    return None, None
