"""Splits of the data cache read on demand: rows decoded into the teacher's input per batch.

A split is an index array into the one cached copy, never a copy of its own. Reading rows
turns stored values into float32 exactly as a resident split was made (cast, divide by the
scale, then dataset.normalize), so a batch is bit-identical either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from akd_core.data.normalize import apply, to_float
from akd_core.data.store import StoredArray

# Rows per chunk when a whole split is walked (statistics, min/max): about this many bytes.
CHUNK_BYTES = 4 * 1024**2


@dataclass(frozen=True, eq=False)
class Decoder:
    """Stored rows -> float32 inputs: cast, divide by `scale`, subtract mean, divide by std."""

    stored: StoredArray
    scale: float | None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The inputs of the stored rows `rows` (global row ids), in that order."""
        return apply(to_float(self.stored[rows], self.scale), self.mean, self.std)


def chunk_rows(row_bytes: int) -> int:
    """Rows per chunk so that one chunk holds about CHUNK_BYTES."""
    return max(1, CHUNK_BYTES // max(row_bytes, 1))


class SplitView:
    """A numpy-like, read-only split: len, shape, dtype, slicing and index arrays, min/max.

    `decode` None gives rows as stored (e.g. uint8 pixels for raw-input checks).
    """

    def __init__(
        self,
        stored: StoredArray,
        rows: np.ndarray,
        decode: Decoder | None,
        axes: tuple[int, ...] | None = None,
    ) -> None:
        self.stored, self.rows, self.decode, self.axes = stored, rows, decode, axes

    @property
    def dtype(self) -> np.dtype:
        """float32 for decoded inputs, else the stored dtype."""
        return np.dtype(np.float32) if self.decode else self.stored.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """(rows, *sample shape), with `axes` applied."""
        full = (len(self.rows), *self.stored.shape[1:])
        return full if self.axes is None else tuple(full[a] for a in self.axes)

    @property
    def ndim(self) -> int:
        """Axes of the split (rows first)."""
        return self.stored.ndim

    @property
    def size(self) -> int:
        """Values in the split."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes the split would take as an array (it holds only its row ids)."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice | np.ndarray | int) -> np.ndarray:
        """Rows `key` of the split (a slice or index array; an int gives one sample)."""
        picked = self.rows[key]
        one = np.ndim(picked) == 0
        ids = np.atleast_1d(picked)
        out = self.decode(ids) if self.decode else self.stored[ids]
        if self.axes is not None:
            out = np.ascontiguousarray(out.transpose(self.axes))
        return out[0] if one else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def transpose(self, *axes: int) -> SplitView:
        """The same rows with their axes permuted per read (row axis first)."""
        return SplitView(self.stored, self.rows, self.decode, tuple(axes))

    def chunks(self) -> Iterator[np.ndarray]:
        """The split in row order, a few megabytes at a time."""
        step = chunk_rows(self.nbytes // max(len(self), 1))
        for i in range(0, len(self), step):
            yield self[i : i + step]

    def min(self) -> Any:
        """Smallest value (0-d array, as numpy's min)."""
        return np.min([c.min() for c in self.chunks()])

    def max(self) -> Any:
        """Largest value (0-d array, as numpy's max)."""
        return np.max([c.max() for c in self.chunks()])


def renormalized(views: tuple[Any, ...], mean: np.ndarray, std: np.ndarray) -> list[Any]:
    """The same splits read through one decoder that also normalises with `mean`/`std`."""
    decode = replace(views[0].decode, mean=mean, std=std)
    return [SplitView(v.stored, v.rows, decode) for v in views]


def chunked_stats(chunks: Iterator[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std over chunks, combined exactly in float64.

    Chan et al.'s pairwise update: each chunk's count, mean and sum of squared deviations.
    """
    n, mean, m2 = 0, np.zeros(0), np.zeros(0)
    for c in chunks:
        axes = (0, *range(2, c.ndim))
        k = c.size // c.shape[1]
        c_mean = c.mean(axis=axes, dtype=np.float64)
        c_m2 = c.var(axis=axes, dtype=np.float64) * k
        if n == 0:
            n, mean, m2 = k, c_mean, c_m2
            continue
        delta = c_mean - mean
        total = n + k
        mean = mean + delta * (k / total)
        m2 = m2 + c_m2 + delta**2 * (n * k / total)
        n = total
    return mean, np.sqrt(m2 / max(n, 1))
