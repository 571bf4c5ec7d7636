"""On-disk cache of teacher logits, keyed by the teacher, the data and its preprocessing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from akd_core.fileio import atomic_write

CACHE_VERSION = "1"


def cache_key(teacher_fingerprint: str, dataset_fingerprint: str) -> str:
    """Same teacher bytes + same data, splits and preprocessing -> same key."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{teacher_fingerprint}|{dataset_fingerprint}".encode())
    return h.hexdigest()[:32]


class LogitCache:
    """Teacher logits per split, stored as safetensors (no pickle) under `root/<key>.safetensors`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Where the logits of `key` live."""
        return self.root / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The cached logits, or None when absent or unreadable (then they are recomputed)."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return load_file(str(p))
        except Exception:  # a torn or foreign file: recompute rather than fail the job
            return None

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Write atomically (temp file + rename) so concurrent jobs never read a torn file."""
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        return atomic_write(self.path(key), lambda tmp: save_file(arrays, str(tmp)))
