"""Image-folder datasets: an archive (or folder) with one subfolder of images per class."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from akd_core.archives import safe_extract
from akd_core.data.checks import fail
from akd_core.data.dataset import RawData
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

# Files that tools drop into folders; they are not images and not the user's data.
_JUNK = {"thumbs.db", "desktop.ini", "__macosx"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
MAX_PIXELS = 40_000_000  # per image; PIL's own bomb guard is a warning below 2x its limit


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


def read_imagefolder(path: Path, spec: DatasetSpec, work_dir: Path, limits: Limits) -> RawData:
    """Extract (safely) and read an image folder; classes are the sorted subfolder names."""
    source = path.name
    if path.is_dir():
        root = path
    else:
        root = safe_extract(path, Path(tempfile.mkdtemp(dir=work_dir)) / "images", limits)
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
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[str, tuple[int, int]] | None = None
    for label, cdir in enumerate(class_dirs):
        files = sorted(p for p in cdir.rglob("*") if p.is_file() and _visible(p))
        if not files:
            raise fail(source, f"class folder {cdir.name!r} holds no images")
        for f in files:
            member = f.relative_to(root).as_posix()
            arr = _read_image(f, member, spec.image_size, source)
            hw = (arr.shape[0], arr.shape[1])
            if first is None:
                first = (member, hw)
            elif hw != first[1]:
                raise fail(
                    source,
                    f"image {member!r} is {hw[1]}x{hw[0]} but {first[0]!r} is "
                    f"{first[1][1]}x{first[1][0]}; set dataset.image_size to resize them all",
                )
            images.append(arr)
            labels.append(label)
    x = _stack(images)
    return RawData(
        x, np.array(labels, np.int64), [p.name for p in class_dirs], "image", source, 255.0
    )


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """(N, C, H, W) uint8: one channel if every image is grayscale, else RGB throughout."""
    if all(a.ndim == 2 for a in images):
        return np.stack(images)[:, None]
    rgb = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in images]
    return np.ascontiguousarray(np.stack(rgb).transpose(0, 3, 1, 2))
