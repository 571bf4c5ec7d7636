"""NumPy .npz datasets: x, y and optional x_val/y_val, x_test/y_test and class names.

The inputs are streamed member by member into the data cache (a few megabytes at a time),
so an .npz larger than memory is decoded in bounded memory; labels and names are small and
read whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from akd_core.archives import ARCHIVE_READ_ERRORS, check_archive
from akd_core.data.checks import check_finite, check_rows, fail, nonfinite_rows
from akd_core.data.dataset import Kind
from akd_core.data.peek import sample_shape
from akd_core.data.sink import StoreSink
from akd_core.data.store import StoredData
from akd_core.data.views import chunk_rows
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

# What a damaged .npz (bad headers, inflate errors) or one too big to hold raises.
_NPZ_ERRORS: tuple[type[Exception], ...] = (
    ValueError, MemoryError, EOFError, KeyError, *ARCHIVE_READ_ERRORS
)  # fmt: skip
SPLIT_KEYS = {"val": ("x_val", "y_val"), "test": ("x_test", "y_test")}
PARTS = {"main": ("x", "y"), **SPLIT_KEYS}


def _header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of a .npy stream, refusing pickled (object) arrays."""
    version = np.lib.format.read_magic(fh)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unsupported .npy format version {version}")
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:  # 2.0 and 3.0 share the 4-byte header length
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    return tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype)


def _kind(shape: tuple[int, ...], source: str, name: str) -> tuple[Kind, bool]:
    """(kind, whether rows are (H, W, C) images to turn into (C, H, W))."""
    if len(shape) == 2:
        return "features", False
    if len(shape) == 3:
        return "signal", False
    if len(shape) == 4:
        return "image", sample_shape(shape) != shape[1:]
    raise fail(
        source,
        f"{name} has shape {shape}; expected N x F features, N x C x L signals or "
        "N x C x H x W (or N x H x W x C) images",
    )


def _chunks(zf: zipfile.ZipFile, member: str) -> Iterator[np.ndarray]:
    """The rows of one .npy member, a few megabytes at a time, as stored (C order)."""
    with zf.open(member) as fh:
        shape, fortran, dtype = _header(fh)
        if fortran or len(shape) == 0:  # rare: column-major rows are not contiguous
            yield np.ascontiguousarray(np.lib.format.read_array(fh, allow_pickle=False))
            return
        row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
        step = chunk_rows(row)
        for start in range(0, shape[0], step):
            n = min(step, shape[0] - start)
            data = fh.read(n * row)
            if len(data) != n * row:
                raise ValueError(f"{member} ends after {start} of {shape[0]} rows")
            yield np.frombuffer(data, dtype).reshape(n, *shape[1:])


def _small(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    with zf.open(member) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def stream_npz(path: Path, spec: DatasetSpec, sink: StoreSink, limits: Limits) -> StoredData:
    """Check an .npz (no pickled objects) and stream its inputs into the data cache."""
    source = path.name
    # An .npz is a zip: refuse links, escapes, bombs and oversized totals before inflating
    # (its own total and ratio caps: see Limits.for_kind).
    check_archive(path, limits.for_kind("npz"))
    try:
        with zipfile.ZipFile(path) as zf:
            return _stream(zf, source, sink)
    except _NPZ_ERRORS as exc:
        raise fail(source, f"cannot be read as .npz without pickles ({exc})") from exc


def _stream(zf: zipfile.ZipFile, source: str, sink: StoreSink) -> StoredData:
    members = {n.removesuffix(".npy"): n for n in zf.namelist() if n.endswith(".npy")}
    for key in ("x", "y"):
        if key not in members:
            raise fail(source, f"has no array {key!r}; found {sorted(members)} (need x and y)")
    headers: dict[str, tuple[tuple[int, ...], bool, np.dtype]] = {}
    for part, (xk, yk) in PARTS.items():
        if (xk in members) != (yk in members):
            raise fail(source, f"has only one of {xk!r} and {yk!r}; give both or neither")
        if xk in members:
            with zf.open(members[xk]) as fh:
                headers[part] = _header(fh)
    kind, nhwc = _kind(headers["main"][0], source, "x")
    main_sample = _sample(headers["main"][0], nhwc)
    ys: dict[str, np.ndarray] = {}
    for part, (shape, _, dtype) in headers.items():
        xk, yk = PARTS[part]
        _, part_nhwc = _kind(shape, source, xk)
        if part != "main" and _sample(shape, part_nhwc) != main_sample:
            raise fail(
                source,
                f"{xk} has samples of shape {_sample(shape, part_nhwc)} but x has {main_sample}",
            )
        ys[part] = _small(zf, members[yk])  # label values; labels.py maps them to class ids
        check_rows(shape[0], dtype, len(ys[part]), source, xk)
    classes = _class_names(zf, members, source)
    total, done = sum(h[0][0] for h in headers.values()), 0
    with sink.store.writer(sink.key) as writer:
        for part in headers:
            xk, bad = PARTS[part][0], 0
            for chunk in _chunks(zf, members[xk]):
                bad += nonfinite_rows(chunk)
                writer.append(np.ascontiguousarray(chunk.transpose(0, 3, 1, 2)) if nhwc else chunk)
                done += len(chunk)
                if sink.on_progress is not None:
                    sink.on_progress(done, total)
            check_finite(bad, source, xk)
        # Only uint8 images are pixels with a known range; other arrays are used as stored.
        uint8 = headers["main"][2] == np.uint8
        meta: dict[str, Any] = {"classes": classes, "kind": kind, "source": source,
                                "scale": 255.0 if kind == "image" and uint8 else None}  # fmt: skip
        return writer.commit(ys, meta)


def _sample(shape: tuple[int, ...], nhwc: bool) -> tuple[int, ...]:
    return (shape[3], shape[1], shape[2]) if nhwc else shape[1:]


def _class_names(zf: zipfile.ZipFile, members: dict[str, str], source: str) -> list[str]:
    """The names in `classes` (labels then index them), or [] when labels name themselves."""
    if "classes" not in members:
        return []
    names = _small(zf, members["classes"])
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise fail(source, "classes must be a 1-D array of strings (one name per class)")
    return [str(n) for n in names.astype(str)]
