"""Image-folder datasets: an archive (or folder) with one subfolder of images per class."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from akd_core.archives import safe_extract
from akd_core.data.checks import fail
from akd_core.data.room import image_bytes
from akd_core.data.sink import StoreSink
from akd_core.data.store import StoredData
from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

# Files that tools drop into folders; they are not images and not the user's data.
_JUNK = {"thumbs.db", "desktop.ini", "__macosx"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
MAX_PIXELS = 40_000_000  # per image; PIL's own bomb guard is a warning below 2x its limit
# Pillow releases the GIL while it decodes and resizes, so threads decode in parallel.
DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))
DECODE_CHUNK = 1024  # images per write to the cache (and per progress event)
SHOWN_BAD = 10  # unreadable files named in a refusal (the count covers all)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name.lower() not in _JUNK


def _class_root(root: Path) -> Path:
    """Step into single wrapping folders (e.g. 'pets/' around 'cat/', 'dog/')."""
    while True:
        entries = [p for p in root.iterdir() if _visible(p)]
        dirs = [p for p in entries if p.is_dir()]
        if len(entries) != 1 or len(dirs) != 1:
            return root
        inner = [p for p in dirs[0].iterdir() if _visible(p)]
        if not any(p.is_dir() for p in inner):
            return root  # the single folder is a class of its own
        root = dirs[0]


def _read_image(path: Path, member: str, size: int | None, source: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise fail(
                    source, f"image {member!r} has {img.width}x{img.height} pixels, past the cap"
                )
            pic = img.convert("L" if img.mode in _GRAY_MODES else "RGB")
            if size is not None and pic.size != (size, size):
                pic = pic.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(pic, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise fail(source, f"member {member!r} is not a readable image ({exc})") from exc
    return arr  # (H, W) for grayscale, (H, W, 3) for colour


def _class_files(root: Path, source: str) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names (sorted subfolders) and every image file with its class id, in order."""
    base = _class_root(root)
    class_dirs = sorted(
        (p for p in base.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name
    )
    if len(class_dirs) < 2:
        where = base.relative_to(root).as_posix()
        found = ", ".join(repr(p.name) for p in class_dirs[:10]) or "none"
        loose = sum(1 for p in base.iterdir() if p.is_file() and _visible(p))
        raise fail(
            source,
            f"needs one subfolder per class (2 or more); found {len(class_dirs)} in "
            f"{'the top folder' if where == '.' else repr(where + '/')}: {found}"
            + (f", and {loose} file(s) outside any class folder" if loose else ""),
        )
    files: list[tuple[Path, int]] = []
    for label, cdir in enumerate(class_dirs):
        found_files = sorted(p for p in cdir.rglob("*") if p.is_file() and _visible(p))
        if not found_files:
            raise fail(source, f"class folder {cdir.name!r} holds no images")
        files.extend((f, label) for f in found_files)
    return [p.name for p in class_dirs], files


def _decode(
    path: Path, member: str, size: int | None, source: str
) -> tuple[np.ndarray, bool] | str:
    """((H, W, 3) uint8 pixels, was grayscale), or why the file is not a readable image."""
    try:
        arr = _read_image(path, member, size, source)
    except DatasetError as exc:
        return str(exc).removeprefix(f"dataset {source!r}: ")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2), True
    return arr, False


def stream_imagefolder(
    path: Path, spec: DatasetSpec, sink: StoreSink, limits: Limits
) -> StoredData:
    """Extract (safely) and decode an image folder into the data cache, in parallel.

    Classes are the sorted subfolder names. Unreadable files are refused with their list,
    or left out and listed when dataset.skip_bad_files allows it.
    """
    source = path.name
    if path.is_dir():
        root = path
    else:
        root = safe_extract(path, Path(tempfile.mkdtemp(dir=sink.work_dir)) / "images", limits)
    classes, files = _class_files(root, source)
    labels: list[int] = []
    bad: list[str] = []  # "'member' is not a readable image (why)", in file order
    skipped: list[str] = []
    first: tuple[str, tuple[int, int]] | None = None
    all_gray = True
    with sink.store.writer(sink.key) as writer, ThreadPoolExecutor(DECODE_THREADS) as pool:
        for start in range(0, len(files), DECODE_CHUNK):
            batch = files[start : start + DECODE_CHUNK]
            members = [f.relative_to(root).as_posix() for f, _ in batch]
            decoded = pool.map(_decode, [f for f, _ in batch], members,
                               [spec.image_size] * len(batch), [source] * len(batch))  # fmt: skip
            rows = []
            for (_, label), member, got in zip(batch, members, decoded, strict=True):
                if isinstance(got, str):
                    bad.append(got)
                    skipped.append(member)
                    continue
                arr, gray = got
                hw = (arr.shape[0], arr.shape[1])
                if first is None:
                    first = (member, hw)
                elif hw != first[1]:
                    raise fail(
                        source,
                        f"image {member!r} is {hw[1]}x{hw[0]} but {first[0]!r} is "
                        f"{first[1][1]}x{first[1][0]}; set dataset.image_size to resize them all",
                    )
                all_gray = all_gray and gray
                rows.append(arr)
                labels.append(label)
            if bad and not spec.skip_bad_files:
                continue  # keep reading: the refusal lists every unreadable file
            if rows:
                if not writer.rows and first is not None:  # the size is known, none written yet
                    sink.reserve(image_bytes(len(files), *first[1]))
                writer.append(np.ascontiguousarray(np.stack(rows).transpose(0, 3, 1, 2)))
            if sink.on_progress is not None:
                sink.on_progress(min(start + DECODE_CHUNK, len(files)), len(files))
        if bad and not spec.skip_bad_files:
            raise _refusal(source, bad, len(files))
        if not labels:
            raise fail(source, f"none of its {len(files)} files is a readable image")
        if all_gray:  # one channel when every image is grayscale, as the files are
            writer.keep_channels(1)
        meta = {"classes": classes, "kind": "image", "source": source, "scale": 255.0,
                "skipped": skipped}  # fmt: skip
        return writer.commit({"main": np.array(labels, np.int64)}, meta)


def _refusal(source: str, bad: list[str], total: int) -> DatasetError:
    shown = "; ".join(bad[:SHOWN_BAD])
    more = f"; and {len(bad) - SHOWN_BAD} more" if len(bad) > SHOWN_BAD else ""
    return fail(
        source,
        f"{len(bad)} of its {total} files are not readable images: {shown}{more}. Fix or "
        "remove them, or set dataset.skip_bad_files to true to leave them out",
    )
