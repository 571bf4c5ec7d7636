"""CIFAR-10 / CIFAR-100 python archives (tar.gz of pickled batches), read without extraction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from akd_core.archives import read_members
from akd_core.data.checks import fail
from akd_core.data.dataset import RawData
from akd_core.data.safe_pickle import safe_loads
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

_C10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_WANTED = {*_C10_TRAIN, "test_batch", "batches.meta", "train", "test", "meta"}
_PIXELS = 3 * 32 * 32


def _base(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _batch(
    blobs: dict[str, Any], name: str, label_key: bytes, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and (N,) labels of one batch."""
    batch = blobs[name]
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise fail(source, f"batch {name!r} lacks b'data' or {label_key!r}")
    data, labels = batch[b"data"], batch[label_key]
    if isinstance(data, bytes):
        data = np.frombuffer(data, np.uint8)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.size % _PIXELS:
        raise fail(source, f"batch {name!r}: data must be uint8 rows of {_PIXELS} values")
    if not isinstance(labels, list) or not all(isinstance(v, int) for v in labels):
        raise fail(source, f"batch {name!r}: {label_key!r} must be a list of ints")
    x = data.reshape(-1, 3, 32, 32)
    if len(labels) != len(x):
        raise fail(source, f"batch {name!r} has {len(x)} images but {len(labels)} labels")
    try:
        return x, np.array(labels, np.int64)
    except OverflowError:
        raise fail(source, f"batch {name!r}: a label is too large to be a class index") from None


def _names(meta: Any, key: bytes, source: str) -> list[str]:
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise fail(source, f"the meta file lacks {key!r} (a list of class names)")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def read_cifar(path: Path, spec: DatasetSpec, work_dir: Path, limits: Limits) -> RawData:
    """Read the CIFAR-10 (data_batch_1..5, test_batch) or CIFAR-100 (train, test) batches."""
    source = path.name
    raw = read_members(path, lambda n: _base(n) in _WANTED, limits)
    blobs = {
        _base(n): safe_loads(data, f"dataset {source!r}: member {n!r}") for n, data in raw.items()
    }
    if "data_batch_1" in blobs:
        train = [n for n in _C10_TRAIN if n in blobs]
        test, meta, meta_key, label_key = "test_batch", "batches.meta", b"label_names", b"labels"
    elif "train" in blobs:
        train = ["train"]
        test, meta, meta_key, label_key = "test", "meta", b"fine_label_names", b"fine_labels"
    else:
        raise fail(source, "holds neither CIFAR-10 data_batch_* nor CIFAR-100 train/test batches")
    for needed in (test, meta):
        if needed not in blobs:
            raise fail(source, f"has no {needed!r} member; the CIFAR archive is incomplete")
    parts = [_batch(blobs, n, label_key, source) for n in train]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    given = {"test": _batch(blobs, test, label_key, source)}
    classes = _names(blobs[meta], meta_key, source)
    return RawData(x, y, classes, "image", source, 255.0, given)
