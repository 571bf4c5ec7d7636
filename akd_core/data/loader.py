"""load_dataset: read, validate, split, normalise and fingerprint a dataset."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from akd_core.data import normalize
from akd_core.data.builtin import load_builtin
from akd_core.data.checks import check_classes, check_inputs, fail
from akd_core.data.cifar import read_cifar
from akd_core.data.dataset import Dataset, RawData
from akd_core.data.heap import return_large_buffers
from akd_core.data.images import stream_imagefolder
from akd_core.data.labels import encode_labels
from akd_core.data.npz import stream_npz
from akd_core.data.room import npz_bytes, parts_bytes, room_maker
from akd_core.data.sink import OnProgress, StoreSink, decode_settings, indexed_raw, raw_meta
from akd_core.data.splits import cap, carve
from akd_core.data.store import DataStore, StoredData, store_key
from akd_core.data.tabular import read_csv
from akd_core.data.views import Decoder, SplitView
from akd_core.errors import DatasetError
from akd_core.fileio import sha256_of
from akd_core.formats import infer_dataset_format
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

# Bump when reading, splitting or normalising changes, so old fingerprints stop matching.
FINGERPRINT_VERSION = 3  # 2: labels are values mapped to ids; 3: images default to as stored
Reader = Callable[[Path, DatasetSpec, Path, Limits], RawData]
READERS: dict[str, Reader] = {
    "cifar": read_cifar,
    "csv": read_csv,
}
ACCEPTED = ("npz", "imagefolder", "cifar", "csv")
# Readers that write to the data cache as they decode (bounded memory for any size).
Streamer = Callable[[Path, DatasetSpec, StoreSink, Limits], StoredData]
STREAMERS: dict[str, Streamer] = {"npz": stream_npz, "imagefolder": stream_imagefolder}


def identify(spec: DatasetSpec, path: Path | None) -> tuple[str, str]:
    """(resolved format, digest of the source): 'builtin' and its name, or the file's sha256."""
    scheme, _, name = spec.source.partition(":")
    if scheme == "builtin":
        return "builtin", f"builtin:{name}"
    if path is None:
        raise DatasetError(f"dataset source {spec.source!r} needs a file", field="dataset.source")
    path = Path(path)
    fmt = infer_dataset_format(path, spec.format)
    if fmt not in ACCEPTED:
        raise DatasetError(
            f"dataset.format {fmt!r} (text data) is not supported yet; accepted: "
            f"{', '.join(ACCEPTED)}",
            field="dataset.format",
        )
    return fmt, sha256_of(path)


def _read(
    spec: DatasetSpec, path: Path | None, fmt: str, work_dir: Path, limits: Limits
) -> RawData:
    """The raw data of a builtin or a file source, read into memory by its format's reader."""
    if fmt == "builtin":
        return load_builtin(spec.source.partition(":")[2])
    assert path is not None  # identify() refused a file source without a file
    return READERS[fmt](Path(path), spec, work_dir, limits)


def _decode(
    spec: DatasetSpec, path: Path | None, fmt: str, sink: StoreSink, limits: Limits
) -> StoredData:
    """Read the source once and write it to the data cache (checked before it is stored)."""
    if fmt in STREAMERS:
        assert path is not None
        return STREAMERS[fmt](Path(path), spec, sink, limits)
    raw = _read(spec, path, fmt, sink.work_dir, limits)
    check_inputs(raw.x, raw.y, raw.source)
    for name, (x_given, y_given) in raw.given.items():
        check_inputs(x_given, y_given, raw.source, f"x_{name}")
    parts = {"main": (raw.x, raw.y), **raw.given}
    sink.reserve(parts_bytes(parts))  # exact: the rows are in memory, not yet in the cache
    return sink.store.put(sink.key, parts, raw_meta(raw))


def _fingerprint(source_digest: str, fmt: str, spec: DatasetSpec, seed: int) -> str:
    settings = spec.model_dump(mode="json", exclude={"source", "format", "augment"})
    record = {
        "v": FINGERPRINT_VERSION,
        "source": source_digest,
        "format": fmt,
        "seed": seed,
        **settings,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _split(raw: RawData, spec: DatasetSpec, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train/val/test (x, y) with given splits kept and missing ones carved, stratified."""
    rng = np.random.default_rng(seed)
    x, y = raw.x, raw.y
    out = dict(raw.given)
    if "test" not in out:
        keep, held = carve(y, spec.test_fraction, rng)
        out["test"] = (x[held], y[held])
        x, y = x[keep], y[keep]
    if "val" not in out:
        keep, held = carve(y, spec.val_fraction, rng)
        out["val"] = (x[held], y[held])
        x, y = x[keep], y[keep]
    if spec.max_train_samples is not None:
        if spec.max_train_samples < len(raw.classes):
            raise DatasetError(
                f"max_train_samples ({spec.max_train_samples}) is below the number of classes "
                f"({len(raw.classes)}); every class needs a training sample",
                field="dataset.max_train_samples",
            )
        keep = cap(y, spec.max_train_samples, rng)
        x, y = x[keep], y[keep]
    out["train"] = (x, y)
    for name, (_, ys) in out.items():
        if len(ys) == 0:
            raise fail(raw.source, f"too few samples: the {name} split would be empty")
    return out


def load_dataset(
    spec: DatasetSpec,
    path: Path | None,
    seed: int,
    work_dir: Path | None = None,
    limits: Limits | None = None,
    *,
    store_root: Path | None = None,
    on_progress: OnProgress | None = None,
    on_evict: Callable[[str], None] | None = None,
) -> Dataset:
    """Load the dataset a spec names: validated, split, normalised, fingerprinted.

    The source is decoded once into the data cache under `store_root` (shared by jobs that
    name the same folder; a private one that vanishes with the dataset when None). Splits
    are row ids into that one copy: read into memory whole when their float32 form fits
    `limits.resident_data_bytes`, else read batch by batch (`Dataset.placement`).
    `limits` are the caps archives, tables and label sets must pass (the service passes
    its configured ones; the defaults otherwise). `on_progress(done, total)` follows decoding;
    `on_evict(line)` hears each cache entry evicted to make room for the decoded data.
    """
    limits = limits or Limits()
    fmt, digest = identify(spec, path)
    key = store_key(digest, fmt, decode_settings(spec))
    with contextlib.ExitStack() as stack:
        root = store_root or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="akd-store-"))
        )
        store = DataStore(root)
        stored = store.open(key)
        if stored is None:
            make_room = room_maker(store_root, limits.cache_max_bytes, on_evict)
            if work_dir is not None:
                Path(work_dir).mkdir(parents=True, exist_ok=True)
            # Extracted files are decoded into the cache, so a scratch folder can go after.
            scratch = Path(work_dir) if work_dir else Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="akd-data-")))  # fmt: skip
            sink = StoreSink(store, key, scratch, on_progress, make_room)
            if fmt == "npz":  # its size is in its headers: room before decoding starts; the
                sink.reserve(npz_bytes(path))  # other formats reserve once their size is known
            stored = _decode(spec, path, fmt, sink, limits)
    # (A private store's files are unlinked now; the mapping keeps the rows readable.)
    return _build(spec, seed, fmt, digest, stored, limits)


def _build(
    spec: DatasetSpec, seed: int, fmt: str, digest: str, stored: StoredData, limits: Limits
) -> Dataset:
    """Labels encoded, splits carved as row ids, placement chosen, normalisation fitted."""
    raw = indexed_raw(stored)  # x holds global row ids: splitting moves ids, not data
    raw = encode_labels(raw, spec.num_classes, limits.max_classes)
    check_classes(raw.y, raw.classes, raw.source)  # labels.encode_labels checked the ranges
    splits = _split(raw, spec, seed)
    sample = stored.x.shape[1:]
    used = sum(len(rows) for rows, _ in splits.values())
    resident = used * int(np.prod(sample, dtype=np.int64)) * 4 <= limits.resident_data_bytes
    xs: dict[str, Any]
    stored_xs: dict[str, Any]
    if resident:  # as before the cache: float32 copies, normalised in place
        stored_xs = {k: stored.x[rows] for k, (rows, _) in splits.items()}
        xs = {k: normalize.to_float(v, raw.scale) for k, v in stored_xs.items()}
        mode, mean, std = normalize.fit(xs["train"], spec.normalize, raw.kind)
        for arr in xs.values():
            normalize.apply(arr, mean, std)
    else:
        return_large_buffers()  # batch after batch of the same size: give each back
        stored_xs = {k: SplitView(stored.x, rows, None) for k, (rows, _) in splits.items()}
        plain = Decoder(stored.x, raw.scale)
        mode, mean, std = normalize.fit(
            SplitView(stored.x, splits["train"][0], plain), spec.normalize, raw.kind
        )
        decode = Decoder(stored.x, raw.scale, mean, std)
        xs = {k: SplitView(stored.x, rows, decode) for k, (rows, _) in splits.items()}
    # A streamed split is a SplitView: numpy-like (len, shape, dtype, slices, index arrays).
    return Dataset(
        x_train=cast(np.ndarray, xs["train"]),
        y_train=splits["train"][1],
        x_val=cast(np.ndarray, xs["val"]),
        y_val=splits["val"][1],
        x_test=cast(np.ndarray, xs["test"]),
        y_test=splits["test"][1],
        classes=list(raw.classes),
        kind=raw.kind,
        input_shape=tuple(int(d) for d in sample),
        normalization=normalize.describe(mode, mean, std, raw.scale),
        fingerprint=_fingerprint(digest, fmt, spec, seed),
        source_name=raw.source,
        stored_val=cast(np.ndarray, stored_xs["val"]),
        stored_test=cast(np.ndarray, stored_xs["test"]),
        scale=raw.scale,
        source_sha256=None if fmt == "builtin" else digest,
        placement="resident" if resident else "streamed",
        skipped=list(stored.meta.get("skipped", [])),
    )
