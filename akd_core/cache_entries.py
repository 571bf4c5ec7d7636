"""The entries of a job cache folder: teacher logits, decoded data and tokenised text.

A cache folder (`akd distill --cache-dir`, the service's AKD_CACHE_DIR) holds three kinds:
    <root>/<key>.safetensors      teacher logits (akd_core.cache)
    <root>/data/<key>/            a decoded dataset (akd_core.data.store)
    <root>/tokens/<key>.npz       tokenised text (akd_core.text.data)
Names starting with a dot are never entries: temporaries being written (atomic writes,
a data entry's temp folder), entries being removed, and the lease files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from akd_core.cache_lease import in_use, last_used

# kind -> (sub-folder of the cache root, suffix of a file entry; None: entries are folders)
KINDS: dict[str, tuple[str, str | None]] = {
    "logits": ("", ".safetensors"),
    "data": ("data", None),
    "tokens": ("tokens", ".npz"),
}


def cache_root_of_store(store_root: Path) -> Path | None:
    """The cache folder that holds the data store `store_root`, or None when it is not one's
    `data/` sub-folder (a private or hand-made store is no cache folder's to prune)."""
    return store_root.parent if store_root.name == KINDS["data"][0] else None


@dataclass(frozen=True)
class CacheEntry:
    """One committed entry: what it is, where, how big, and when a job last used it."""

    kind: str
    key: str
    path: Path
    size: int  # bytes of its files
    last_used: float  # epoch seconds

    def in_use(self) -> bool:
        """True while a job (in any process) holds it."""
        return in_use(self.path)


def entry_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if not path.is_dir():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:  # removed while we walked
                continue
    return total


def list_entries(root: Path) -> list[CacheEntry]:
    """Every committed entry under the cache folder `root`, least recently used first."""
    out = []
    for kind, (sub, suffix) in KINDS.items():
        folder = root / sub if sub else root
        try:
            children = list(folder.iterdir())
        except FileNotFoundError:
            continue
        for path in children:
            if path.name.startswith("."):
                continue  # being written or removed, or the leases
            if suffix is None:
                ok, key = path.is_dir(), path.name
            else:
                ok, key = path.is_file() and path.name.endswith(suffix), path.name[: -len(suffix)]
            if not ok:
                continue
            try:
                out.append(CacheEntry(kind, key, path, entry_size(path), last_used(path)))
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
    return sorted(out, key=lambda e: (e.last_used, e.kind, e.key))
