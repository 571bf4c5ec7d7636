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


# --- Exact peeks: what the teacher check before the data needs (a wrong answer would refuse
# a good teacher, so each value is given only where it is what the loader will find).

# A label array past this size is not read early (the loader reads it, with its own caps).
LABEL_PEEK_BYTES = 64 * 1024**2
# Image headers read to tell grayscale from colour; past this, the answer is left unknown.
IMAGE_PEEK_MEMBERS = 4096


def _npz_classes(path: Path, declared: int | None) -> int | None:
    """The class count the label encoder will find: `classes`, the declared count, or the
    distinct labels of every split (only the small label arrays are inflated, not x)."""
    import numpy as np

    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            names = _npy_shape(zf, "classes.npy") if "classes.npy" in infos else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None
    if names is not None:
        return names[0] if len(names) == 1 else None
    if declared is not None:
        return declared
    keys = [k for k in ("y", "y_val", "y_test") if f"{k}.npy" in infos]
    if "y" not in keys or any(infos[f"{k}.npy"].file_size > LABEL_PEEK_BYTES for k in keys):
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            ys = [npz[k] for k in keys]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return None
    kinds = {y.dtype.kind for y in ys}
    if any(y.ndim != 1 or not len(y) for y in ys) or not kinds <= {"i", "u", "U", "S"}:
        return None  # floats, mixed or empty labels: the loader explains what is wrong
    if len({k in "US" for k in kinds}) > 1:
        return None
    return len(np.unique(np.concatenate(ys)))


def _zip_children(names: list[str]) -> dict[tuple[str, ...], dict[str, bool]]:
    """{folder parts: {child name: is a folder}} of a zip's member names."""
    tree: dict[tuple[str, ...], dict[str, bool]] = {(): {}}
    for name in names:
        parts = [p for p in name.split("/") if p]
        for i, part in enumerate(parts):
            is_dir = i < len(parts) - 1 or name.endswith("/")
            tree.setdefault(tuple(parts[:i]), {})
            tree[tuple(parts[:i])][part] = tree[tuple(parts[:i])].get(part, False) or is_dir
    return tree


def _visible(name: str) -> bool:
    from akd_core.data.images import _JUNK  # the loader's own rule for what is not data

    return not name.startswith(".") and name.lower() not in _JUNK


def _class_folders(
    tree: dict[tuple[str, ...], dict[str, bool]],
) -> tuple[tuple[str, ...], list[str]]:
    """The folder holding the class folders (single wrapping folders stepped into), and them."""
    root: tuple[str, ...] = ()
    while True:  # the rule of images._class_root, on names
        entries = {n: d for n, d in tree.get(root, {}).items() if _visible(n)}
        dirs = [n for n, d in entries.items() if d]
        if len(entries) != 1 or len(dirs) != 1:
            break
        inner = tree.get((*root, dirs[0]), {})
        if not any(d for n, d in inner.items() if _visible(n)):
            break
        root = (*root, dirs[0])
    return root, sorted(n for n, d in tree.get(root, {}).items() if d and _visible(n))


def _peek_imagefolder(path: Path, image_size: int | None) -> Peek:
    """Classes from a zip's folder names; (C, H, W) from image headers (no pixel decoded)."""
    from PIL import Image, UnidentifiedImageError

    from akd_core.data.images import _GRAY_MODES

    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist()]
            root, classes = _class_folders(_zip_children(names))
            if len(classes) < 2:
                return None, None
            prefix = "/".join(root) + "/" if root else ""
            images = sorted(
                (tuple(n[len(prefix) :].split("/")) for n in names
                 if n.startswith(prefix) and not n.endswith("/")
                 and n[len(prefix) :].split("/")[0] in classes and _visible(n.rsplit("/", 1)[-1])),
            )  # fmt: skip
            if not images:
                return None, len(classes)
            channels, size = 1, None
            for i, parts in enumerate(images):
                if i >= IMAGE_PEEK_MEMBERS:
                    return None, len(classes)  # all grayscale so far, more unread
                with zf.open(prefix + "/".join(parts)) as fh, Image.open(fh) as img:
                    size = size or (img.height, img.width)
                    if img.mode not in _GRAY_MODES:
                        channels = 3
                        break
    except (zipfile.BadZipFile, OSError, UnidentifiedImageError, ValueError, KeyError):
        return None, None  # the loader gives the reason
    hw = (image_size, image_size) if image_size is not None else size
    return (channels, *hw) if hw else None, len(classes)


def peek_exact(spec: DatasetSpec, fmt: str | None, path: Path | None) -> Peek:
    """(sample shape, class count) exactly as the loader will find them, each None where the
    headers and names do not tell; read before the data (images and arrays are not decoded)."""
    declared = spec.num_classes
    scheme = spec.source.partition(":")[0]
    if scheme == "builtin":
        return peek_dataset(spec, fmt, path)
    if fmt == "cifar":
        return CIFAR_SHAPE, declared  # the class names sit in a meta member deep in the tar
    if path is None or not path.is_file():
        return None, None
    if fmt == "npz":
        shape, _ = _peek_npz(path)
        if shape is not None and len(shape) > 3:  # not a layout the loader accepts
            shape = None
        return shape, _npz_classes(path, declared)
    if fmt == "imagefolder" and zipfile.is_zipfile(path):
        return _peek_imagefolder(path, spec.image_size)
    if fmt == "csv":
        return _peek_csv(path, spec)[0], declared
    return None, None


# CIFAR-10 and CIFAR-100 both hold 50,000 training and 10,000 test images.
CIFAR_COUNTS = (50_000, 10_000)


def _npz_counts(path: Path) -> tuple[int, int | None, int | None] | None:
    """Rows of x, x_val and x_test (None: absent) from their .npy headers."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            rows = [
                (_npy_shape(zf, f"{k}.npy") or (None,))[0] if f"{k}.npy" in names else None
                for k in ("x", "x_val", "x_test")
            ]
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return None
    return None if rows[0] is None else (rows[0], rows[1], rows[2])


def plan_counts(spec: DatasetSpec, rows: int, val: int | None, test: int | None) -> tuple[int, int]:
    """(samples the run holds in all splits, training samples) after carving missing splits
    from `rows` by the spec's fractions and capping training at max_train_samples."""
    if test is None:
        test = max(1, round(rows * spec.test_fraction))
        rows -= test
    if val is None:
        val = max(1, round(rows * spec.val_fraction))
        rows -= val
    train = rows if spec.max_train_samples is None else min(rows, spec.max_train_samples)
    return train + val + test, train


def peek_counts(spec: DatasetSpec, fmt: str | None, path: Path | None) -> tuple[int, int] | None:
    """(samples in all splits, training samples) from headers, or None where they do not tell."""
    scheme, _, name = spec.source.partition(":")
    if scheme == "builtin":
        from akd_core.data.builtin import BUILTIN_SAMPLES

        n = BUILTIN_SAMPLES.get(name)
        return None if n is None else plan_counts(spec, n, None, None)
    if fmt == "cifar":
        return plan_counts(spec, CIFAR_COUNTS[0], None, CIFAR_COUNTS[1])
    if fmt == "npz" and path is not None and path.is_file():
        rows = _npz_counts(path)
        return None if rows is None else plan_counts(spec, *rows)
    return None
