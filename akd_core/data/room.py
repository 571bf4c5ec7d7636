"""Room in the cache folder for a dataset about to be decoded into it, sized before it is written.

Every format's size is known before its rows reach the cache, each at the earliest point
where it is certain rather than guessed:
    npz           its x and y arrays' .npy bytes, from the zip's headers, before decoding;
    cifar, csv,   the arrays the reader holds in memory (exact), just before they are stored;
    builtin
    imagefolder   files x 3 x H x W bytes (+ 8 per label) once the first chunk is decoded and
                  before it is written: H x W is `image_size` or the first image's (all must
                  match), and rows are written as RGB until the end (an all-grayscale set is
                  then cut to one channel), so this is what decoding writes at most.
A CSV is not sized from its file before parsing: its row count is its line count only
when no field holds a quoted newline, and parsing is the reading the loader does anyway.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from akd_core.cache_entries import cache_root_of_store
from akd_core.cache_prune import prune_and_tell
from akd_core.data.sink import MakeRoom

LABEL_BYTES = 8  # an int64 class id per row (images, CIFAR)


def npz_bytes(path: Path | None) -> int:
    """Bytes of an .npz's rows and labels as the cache will hold them (0: unreadable)."""
    if path is None:
        return 0
    try:
        with zipfile.ZipFile(path) as zf:  # .npy bytes: as stored, header included
            return sum(i.file_size for i in zf.infolist() if i.filename.startswith(("x", "y")))
    except (zipfile.BadZipFile, OSError):
        return 0  # the reader reports what is wrong with the file


def parts_bytes(parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Bytes of in-memory parts {name: (x, y)} once stored (rows and labels)."""
    return sum(int(x.nbytes) + int(y.nbytes) for x, y in parts.values())


def image_bytes(files: int, height: int, width: int) -> int:
    """The most bytes decoding `files` images of height x width writes (RGB rows, labels)."""
    return files * (3 * height * width + LABEL_BYTES)


def room_maker(
    store_root: Path | None, max_bytes: int | None, tell: Callable[[str], None] | None
) -> MakeRoom | None:
    """A function that evicts what a new entry of n bytes would push over the cap, each
    eviction logged and told to `tell` (a job's events); None when there is nothing to
    prune: no cap, or a store that is no cache folder's (a private one)."""
    cache_root = cache_root_of_store(store_root) if store_root is not None else None
    if cache_root is None or max_bytes is None:
        return None
    root, cap = cache_root, max_bytes

    def make_room(incoming: int) -> None:
        prune_and_tell(root, cap, tell, incoming)

    return make_room
