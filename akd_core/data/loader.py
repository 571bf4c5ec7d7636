"""load_dataset: read, validate, split, normalise and fingerprint a dataset."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from akd_core.data import normalize
from akd_core.data.builtin import load_builtin
from akd_core.data.checks import check_classes, check_inputs, fail
from akd_core.data.cifar import read_cifar
from akd_core.data.dataset import Dataset, RawData
from akd_core.data.images import read_imagefolder
from akd_core.data.labels import encode_labels
from akd_core.data.npz import read_npz
from akd_core.data.splits import cap, carve
from akd_core.data.tabular import read_csv
from akd_core.errors import DatasetError
from akd_core.fileio import sha256_of
from akd_core.formats import infer_dataset_format
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

# Bump when reading, splitting or normalising changes, so old fingerprints stop matching.
FINGERPRINT_VERSION = 3  # 2: labels are values mapped to ids; 3: images default to as stored
Reader = Callable[[Path, DatasetSpec, Path, Limits], RawData]
READERS: dict[str, Reader] = {
    "npz": read_npz,
    "imagefolder": read_imagefolder,
    "cifar": read_cifar,
    "csv": read_csv,
}


def _read(
    spec: DatasetSpec, path: Path | None, work_dir: Path, limits: Limits
) -> tuple[RawData, str, str]:
    """(raw data, resolved format, digest of the source) for a builtin or a file source."""
    scheme, _, name = spec.source.partition(":")
    if scheme == "builtin":
        return load_builtin(name), "builtin", f"builtin:{name}"
    if path is None:
        raise DatasetError(f"dataset source {spec.source!r} needs a file", field="dataset.source")
    path = Path(path)
    fmt = infer_dataset_format(path, spec.format)
    if fmt not in READERS:
        raise DatasetError(
            f"dataset.format {fmt!r} (text data) is not supported yet; accepted: "
            f"{', '.join(READERS)}",
            field="dataset.format",
        )
    return READERS[fmt](path, spec, work_dir, limits), fmt, sha256_of(path)


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


def _as_float(x: np.ndarray, scale: float | None) -> np.ndarray:
    out = x.astype(np.float32)  # always a copy, so normalising in place is safe
    if scale:
        out /= np.float32(scale)
    return out


def load_dataset(
    spec: DatasetSpec,
    path: Path | None,
    seed: int,
    work_dir: Path | None = None,
    limits: Limits | None = None,
) -> Dataset:
    """Load the dataset a spec names into memory: validated, split, normalised, fingerprinted.

    `limits` are the caps archives, tables and label sets must pass (the service passes
    its configured ones; the defaults otherwise).
    """
    limits = limits or Limits()
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    # Extracted files are read into memory, so a scratch folder can go right after reading.
    with tempfile.TemporaryDirectory(prefix="akd-data-") as scratch:
        raw, fmt, digest = _read(
            spec,
            path,
            Path(work_dir) if work_dir else Path(scratch),
            limits,
        )
    raw = encode_labels(raw, spec.num_classes, limits.max_classes)
    check_inputs(raw.x, raw.y, raw.source)
    for name, (x_given, y_given) in raw.given.items():
        check_inputs(x_given, y_given, raw.source, f"x_{name}")
    check_classes(raw.y, raw.classes, raw.source)  # labels.encode_labels checked the ranges
    splits = _split(raw, spec, seed)
    x_train = _as_float(splits["train"][0], raw.scale)
    mode, mean, std = normalize.fit(x_train, spec.normalize, raw.kind)
    xs = {k: x_train if k == "train" else _as_float(v[0], raw.scale) for k, v in splits.items()}
    for arr in xs.values():
        normalize.apply(arr, mean, std)
    return Dataset(
        x_train=xs["train"],
        y_train=splits["train"][1],
        x_val=xs["val"],
        y_val=splits["val"][1],
        x_test=xs["test"],
        y_test=splits["test"][1],
        classes=list(raw.classes),
        kind=raw.kind,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        normalization=normalize.describe(mode, mean, std, raw.scale),
        fingerprint=_fingerprint(digest, fmt, spec, seed),
        source_name=raw.source,
        stored_val=splits["val"][0],
        stored_test=splits["test"][0],
        scale=raw.scale,
        source_sha256=None if fmt == "builtin" else digest,
    )
