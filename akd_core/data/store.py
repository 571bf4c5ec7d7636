"""On-disk cache of decoded datasets: written once, read batch by batch by every job using it.

A dataset is decoded once (images to uint8 pixels, arrays in their stored dtype) into
`root/<key>/`: `x.bin` (all rows, C order: the main rows, then the given val/test rows),
`y.npz` (label values per part: "main", then "val"/"test" when the data brings them, as
stored) and `meta.json`. The key hashes the source bytes and the settings that
change decoding (like the logit cache's), so jobs on the same data share one copy. An entry
is built in a private temp folder and renamed into place: a reader never sees half of one,
and of two jobs racing to build it, one rename wins and the other job reads the winner's.
A job holds a lease on the entry (akd_core.cache_lease) from before it looks until its rows
are no longer referenced, so the cache's pruning never removes an entry a job reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from akd_core.cache_lease import Lease

STORE_VERSION = "1"
X_FILE, Y_FILE, META_FILE = "x.bin", "y.npz", "meta.json"
# Bytes per block when the rows written so far are rewritten (keep_channels).
REWRITE_BYTES = 8 * 1024**2


def store_key(source_digest: str, fmt: str, settings: dict[str, Any]) -> str:
    """Same source bytes, format and decoding settings -> same key."""
    blob = json.dumps({"v": STORE_VERSION, "src": source_digest, "fmt": fmt, **settings},
                      sort_keys=True)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class StoredArray:
    """Read-only rows of an on-disk array; every read returns an in-memory copy.

    Rows are read with positioned reads (pread), not through a memory mapping: the kernel
    counts a mapping's touched pages, and up to 64 KiB of neighbours of each ("fault-around"),
    in the reader's RSS. Measured on 12 KiB rows: a batch of 256 random rows mapped ~50 MB,
    and 200 such batches ~1 GB until dropped; pread holds exactly the batch (2.0 ms a batch,
    against 1.2 ms for the mapped gather plus 1.5 ms to drop its pages).
    """

    def __init__(
        self, path: Path, dtype: np.dtype, shape: tuple[int, ...], lease: Lease | None = None
    ) -> None:
        self.dtype, self.shape = np.dtype(dtype), tuple(shape)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        self.path = Path(path)
        self.lease = lease  # held as long as the rows can be read
        # The open file keeps the data readable even once its name is unlinked.
        self._file = self.path.open("rb", buffering=0)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled by path (a data-parallel rank reopens the entry): a file cannot travel."""
        return {"path": self.path, "dtype": self.dtype.str, "shape": self.shape}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A rank's own lease on the entry folder: the parent's may be let go first.
        lease = Lease.shared(Path(state["path"]).parent)
        self.__init__(state["path"], np.dtype(state["dtype"]), state["shape"], lease)  # type: ignore[misc]

    @property
    def ndim(self) -> int:
        """Axes of the whole array (rows first)."""
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array on disk."""
        return len(self) * self.row_bytes

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | np.ndarray | int) -> np.ndarray:
        """Rows as an ordinary array (a slice or an index array, in the order given)."""
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step == 1:
                out = np.empty((max(stop - start, 0), *self.shape[1:]), self.dtype)
                self._read_into(out, start)
                return out
        ids = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        if ids.ndim == 0:
            return self[int(ids) : int(ids) + 1][0]
        ids = np.where(ids < 0, ids + len(self), ids)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"row ids outside 0..{len(self) - 1}")
        order = np.argsort(ids, kind="stable")
        ordered = np.empty((len(ids), *self.shape[1:]), self.dtype)
        sorted_ids = ids[order]
        # Runs of consecutive rows are one read each (a whole split in order is one read).
        breaks = np.flatnonzero(np.diff(sorted_ids) != 1) + 1
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(ids)], strict=True):
            if hi > lo:
                self._read_into(ordered[lo:hi], int(sorted_ids[lo]))
        out = np.empty_like(ordered)
        out[order] = ordered
        return out

    def _read_into(self, out: np.ndarray, first_row: int) -> None:
        view = out.data.cast("B")
        offset, done = first_row * self.row_bytes, 0
        while done < len(view):
            n = os.preadv(self._file.fileno(), [view[done:]], offset + done)
            if n <= 0:
                raise OSError(f"{self._file.name} ends before row {first_row + len(out)}")
            done += n


@dataclass(frozen=True)
class StoredData:
    """One cache entry as mapped: all rows, their label values and what the reader found."""

    x: StoredArray  # (N, ...) every row: main rows, then each given split's rows
    y: dict[str, np.ndarray]  # label values per part ("main", "val", "test"), in row order
    meta: dict[str, Any]  # classes, kind, source, scale, what the reader skipped
    path: Path

    def rows(self) -> dict[str, np.ndarray]:
        """Global row ids of each part, in the order the parts were written."""
        out, start = {}, 0
        for part, y in self.y.items():
            out[part] = np.arange(start, start + len(y), dtype=np.int64)
            start += len(y)
        return out


class StoreWriter:
    """Rows appended chunk by chunk to a temp entry, then committed by one rename."""

    def __init__(self, store: DataStore, key: str) -> None:
        self.store, self.key = store, key
        store.root.mkdir(parents=True, exist_ok=True)
        # Held from before the temp folder exists until the job has the committed entry open:
        # pruning takes neither the entry nor, while this writer lives, its temp folder.
        self.lease = Lease.shared(store.entry(key))
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=store.root))
        self.tmp.chmod(0o755)  # mkdtemp's 0700 would hide the shared entry from other jobs' users
        self._fh = (self.tmp / X_FILE).open("wb")
        self.rows = 0
        self.dtype: np.dtype | None = None
        self.sample_shape: tuple[int, ...] | None = None

    def append(self, chunk: np.ndarray) -> None:
        """Write rows of one dtype and sample shape (the first chunk fixes both)."""
        if self.dtype is None:
            self.dtype, self.sample_shape = chunk.dtype, tuple(chunk.shape[1:])
        if chunk.dtype != self.dtype or tuple(chunk.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"chunk of {chunk.dtype} {chunk.shape[1:]} after {self.dtype} {self.sample_shape}"
            )
        self._fh.write(np.ascontiguousarray(chunk).data.cast("B"))  # no extra copy
        self.rows += len(chunk)

    def keep_channels(self, n: int) -> None:
        """Rewrite the rows written so far keeping only their first n channels (axis 1)."""
        assert self.dtype is not None and self.sample_shape is not None
        self._fh.close()
        old, new = self.tmp / X_FILE, self.tmp / f"{X_FILE}.part"
        sample = self.sample_shape
        row = self.dtype.itemsize * int(np.prod(sample, dtype=np.int64))
        step = max(1, REWRITE_BYTES // max(row, 1))
        with old.open("rb") as src, new.open("wb") as dst:
            while data := src.read(step * row):
                rows = np.frombuffer(data, self.dtype).reshape(-1, *sample)
                dst.write(np.ascontiguousarray(rows[:, :n]).tobytes())
        os.replace(new, old)
        self.sample_shape = (n, *sample[1:])
        self._fh = old.open("ab")

    def commit(self, ys: dict[str, np.ndarray], meta: dict[str, Any]) -> StoredData:
        """Finish the entry and move it into place (or keep the one a racing job committed).

        `ys` holds the labels of each part in the order its rows were appended.
        """
        self._fh.close()
        if sum(len(y) for y in ys.values()) != self.rows:
            raise ValueError(f"{sum(len(y) for y in ys.values())} labels for {self.rows} rows")
        np.savez(self.tmp / Y_FILE, allow_pickle=False, **ys)
        full = {
            "parts": list(ys),
            **meta,
            "dtype": np.dtype(self.dtype or np.float32).str,
            "shape": [self.rows, *(self.sample_shape or ())],
        }
        (self.tmp / META_FILE).write_text(json.dumps(full))
        final = self.store.entry(self.key)
        try:
            os.rename(self.tmp, final)
        except OSError:  # the key is taken: by a racing job (keep its entry) or a damaged one
            if self.store.open(self.key) is None:
                trash = Path(tempfile.mkdtemp(prefix=f".{self.key}.old.", dir=self.store.root))
                os.rename(final, trash / "entry")  # out of the way, then ours in its place
                os.rename(self.tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
        opened = self.store.open(self.key)
        self.lease.release()  # `opened` holds its own
        if opened is None:
            raise OSError(f"data cache entry {final} vanished right after it was written")
        return opened

    def abort(self) -> None:
        """Remove the temp entry (a failed or refused read leaves nothing behind)."""
        self._fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.lease.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()


class DataStore:
    """Decoded datasets under `root/<key>/`, shared by every job that points at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        """The folder of `key`'s entry."""
        return self.root / key

    def open(self, key: str) -> StoredData | None:
        """The entry (leased while its rows are referenced), or None when absent or unreadable
        (then it is decoded again)."""
        folder = self.entry(key)
        lease = Lease.shared(folder)  # before looking: an eviction in progress finishes first
        try:
            meta = json.loads((folder / META_FILE).read_text())
            with np.load(folder / Y_FILE, allow_pickle=False) as npz:
                y = {part: npz[part] for part in meta["parts"]}
            x = StoredArray(folder / X_FILE, np.dtype(meta["dtype"]), tuple(meta["shape"]), lease)
        except (OSError, ValueError, KeyError, TypeError):
            lease.release()
            return None
        if (
            sum(len(v) for v in y.values()) != len(x)
            or (folder / X_FILE).stat().st_size != x.nbytes
        ):
            lease.release()
            return None  # damaged by hand: decoding again is cheaper than a wrong answer
        return StoredData(x, y, meta, folder)

    def writer(self, key: str) -> StoreWriter:
        """A writer for a new entry of `key`."""
        return StoreWriter(self, key)

    def put(
        self, key: str, parts: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict[str, Any]
    ) -> StoredData:
        """Store arrays already in memory (readers that cannot stream): {part: (x, y)}."""
        with self.writer(key) as w:
            for x, _ in parts.values():
                w.append(x)
            return w.commit({part: y for part, (_, y) in parts.items()}, meta)
