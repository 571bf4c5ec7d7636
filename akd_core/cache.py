"""On-disk cache of teacher logits, keyed by the teacher, the data and its preprocessing."""

from __future__ import annotations

import hashlib
import json
import mmap
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from akd_core.cache_lease import Lease, write_leased
from akd_core.cache_prune import prune_and_tell

CACHE_VERSION = "1"


def cache_key(teacher_fingerprint: str, dataset_fingerprint: str) -> str:
    """Same teacher bytes + same data, splits and preprocessing -> same key."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{teacher_fingerprint}|{dataset_fingerprint}".encode())
    return h.hexdigest()[:32]


class LogitCache:
    """Teacher logits per split, stored as safetensors (no pickle) under `root/<key>.safetensors`."""

    def __init__(
        self, root: Path, max_bytes: int | None = None, tell: Callable[[str], None] | None = None
    ) -> None:
        self.root = root
        self.max_bytes, self.tell = max_bytes, tell  # the cache folder's cap, who hears evictions

    def path(self, key: str) -> Path:
        """Where the logits of `key` live."""
        return self.root / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The cached logits, memory-mapped, or None when absent or unreadable (recomputed).

        The arrays hold a lease on the entry (through their mapping): while any of them is
        alive, the entry is not evicted.
        """
        p = self.path(key)
        lease = Lease.shared(p)  # before looking: an eviction in progress finishes first
        if not p.exists():
            lease.release()
            return None
        try:
            return _mapped(p, lease)
        except Exception:  # a torn or foreign file: recompute rather than fail the job
            lease.release()
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Write atomically (temp file + rename) so concurrent jobs never read a torn file."""
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        # Room is made first: the entry's size is known (its header is a few hundred bytes).
        size = sum(a.nbytes for a in arrays.values())
        prune_and_tell(self.root, self.max_bytes, self.tell, incoming=size)
        return write_leased(self.path(key), lambda tmp: save_file(arrays, str(tmp)))


class _LeasedMap(mmap.mmap):
    """A mapping that keeps its entry's lease for as long as arrays over it are alive."""

    lease: Lease | None = None


def _mapped(path: Path, lease: Lease | None = None) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file as arrays over one copy-on-write mapping.

    Pages are read on demand (a million samples' logits never sit in memory at once), and
    the arrays are writable without touching the file, so torch takes them without a copy.
    """
    with path.open("rb") as fh:
        mm = _LeasedMap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    mm.lease = lease
    (n,) = struct.unpack("<Q", mm[:8])
    header = json.loads(mm[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        shape = tuple(int(d) for d in info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if info["dtype"] != "F32" or end - begin != 4 * count or 8 + n + end > len(mm):
            raise ValueError(f"{path.name}: tensor {name!r} is not the float32 data it claims")
        out[name] = np.frombuffer(mm, np.float32, count, offset=8 + n + begin).reshape(shape)
    return out
