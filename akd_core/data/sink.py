"""Between readers and the data cache: where a reader writes, and the entry read back as RawData."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akd_core.data.dataset import RawData
from akd_core.data.store import DataStore, StoredData
from akd_core.spec import DatasetSpec

OnProgress = Callable[[int, int], None]  # (items decoded, items in all)
MakeRoom = Callable[[int], None]  # (bytes of the new entry) -> evict what it would push over
# The spec fields that change what is decoded (the rest act on the decoded rows).
DECODE_FIELDS = {"image_size", "label_column", "skip_bad_files"}


@dataclass(frozen=True)
class StoreSink:
    """Where a reader puts what it decodes: the store, the entry's key, a scratch folder, and
    who makes room under the cache cap once the entry's size is known (akd_core.data.room)."""

    store: DataStore
    key: str
    work_dir: Path
    on_progress: OnProgress | None = None
    make_room: MakeRoom | None = None

    def reserve(self, nbytes: int) -> None:
        """Evict what a new entry of `nbytes` would push over the cache cap (before writing it)."""
        if self.make_room is not None:
            self.make_room(nbytes)


def decode_settings(spec: DatasetSpec) -> dict[str, Any]:
    """The part of the dataset spec that the data cache key must cover."""
    return spec.model_dump(mode="json", include=DECODE_FIELDS)


def raw_meta(raw: RawData, skipped: list[str] | None = None) -> dict[str, Any]:
    """What the cache entry keeps beside the rows (the reader's findings, JSON-ready)."""
    return {
        "classes": list(raw.classes),
        "kind": raw.kind,
        "source": raw.source,
        "scale": raw.scale,
        "skipped": list(skipped or []),
    }


def indexed_raw(stored: StoredData) -> RawData:
    """RawData whose x are global row ids into the entry (given splits as their own parts)."""
    rows, meta = stored.rows(), stored.meta
    given = {part: (rows[part], stored.y[part]) for part in rows if part != "main"}
    return RawData(
        rows["main"],
        stored.y["main"],
        list(meta["classes"]),
        meta["kind"],
        meta["source"],
        meta["scale"],
        given,
    )
