"""Room is made in the cache folder before a dataset of any format is decoded into it: the older
entry is evicted before the first row is written, and the job hears of it (on_evict)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from akd_core.cache import LogitCache
from akd_core.cache_entries import list_entries
from akd_core.cache_lease import lease_path
from akd_core.data import load_dataset
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec
from tests.akd_core.dropin_support import cifar_members, png_members, write_zip
from tests.akd_core.test_data_images import _write_tar

KIB = 1024


def _npz(folder: Path) -> Path:
    x = np.random.default_rng(0).integers(0, 256, (48, 3, 8, 8), np.uint8)
    np.savez(folder / "d.npz", x=x, y=np.arange(48) % 2)
    return folder / "d.npz"


def _images(folder: Path) -> Path:
    return write_zip(folder / "colors.zip", png_members())  # 60 RGB 8x8 images


def _cifar(folder: Path) -> Path:
    return _write_tar(folder / "cifar-10-python.tar.gz", cifar_members())  # 84 32x32 images


def _csv(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = [",".join([*(f"f{i}" for i in range(16)), "label"])]
    lines += [",".join([*(f"{v:.4f}" for v in rng.normal(size=16)), str(r % 3)])
              for r in range(400)]  # fmt: skip
    (folder / "t.csv").write_text("\n".join(lines) + "\n")
    return folder / "t.csv"


MAKERS: dict[str, Callable[[Path], Path]] = {
    "npz": _npz, "imagefolder": _images, "cifar": _cifar, "csv": _csv,
}  # fmt: skip


def _data_bytes(cache: Path) -> int:
    """Bytes of rows written so far under the data store (temp folders included)."""
    total = 0
    for folder, _, files in os.walk(cache / "data"):
        total += sum(os.stat(os.path.join(folder, f)).st_size for f in files if f == "x.bin")
    return total


@pytest.mark.parametrize("fmt", list(MAKERS))
def test_the_older_entry_is_evicted_before_any_row_is_written(tmp_path, fmt):
    data = MAKERS[fmt](tmp_path)
    spec = DatasetSpec(source=f"file:{data.name}", format=fmt)  # type: ignore[arg-type]
    # The new entry's size, from a run without a cap in a folder of its own.
    load_dataset(spec, data, 0, store_root=tmp_path / "probe" / "data")
    (new,) = list_entries(tmp_path / "probe")
    cache = tmp_path / "cache"
    old = LogitCache(cache).put("old", {"val": np.zeros((new.size // 4, 1), np.float32)})
    t = time.time() - 100
    os.utime(old, (t, t))
    cap = new.size * 3 // 2  # either entry fits alone, not both
    heard: list[tuple[str, int]] = []

    def on_evict(line: str) -> None:
        heard.append((line, _data_bytes(cache)))  # rows of the new entry on disk by then

    load_dataset(spec, data, 0, limits=Limits(cache_max_bytes=cap),
                 store_root=cache / "data", on_evict=on_evict)  # fmt: skip
    assert [e.kind for e in list_entries(cache)] == ["data"]
    assert sum(e.size for e in list_entries(cache)) <= cap
    line, rows_then = heard[0]
    assert line.startswith("evicted logits old (") and "least recently used" in line
    assert rows_then == 0  # evicted before the first row was written
    assert not old.exists() and not lease_path(old).exists()


def test_a_job_reports_the_evictions_its_data_caused_as_log_events(digits_teacher, tmp_path):
    from akd_core.errors import JobCancelled
    from akd_core.events import ProgressEvent
    from akd_core.pipeline import run_job
    from akd_core.spec import parse_spec

    spec = parse_spec({
        "teacher": {"source": f"file:{digits_teacher}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
    })  # fmt: skip
    cache, events = tmp_path / "cache", list[ProgressEvent]()
    old = LogitCache(cache).put("old", {"val": np.zeros((100 * KIB, 1), np.float32)})  # 400 KiB
    # 1,797 digits of 8x8 float32 (~460 KiB) and the old entry do not fit 600 KiB together.
    limits = Limits(cache_max_bytes=600 * KIB)
    with pytest.raises(JobCancelled):  # stopped once the data is loaded: no training needed
        run_job(spec, tmp_path / "out", cache_dir=cache, limits=limits,
                on_event=events.append, should_cancel=lambda: True)  # fmt: skip
    said = [(e.stage, e.message) for e in events if e.kind == "log" and "evicted" in e.message]
    assert said == [("loading", "evicted logits old (400.1 KiB, least recently used)")]
    assert not old.exists() and [e.kind for e in list_entries(cache)] == ["data"]
