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


def test_room_is_made_before_new_tokens_are_written_and_the_job_hears_it(tmp_path):
    from akd_core.text.data import load_text_dataset
    from tests.akd_core.text_support import make_tokenizer, sentences, text_rows, write_jsonl

    tok = make_tokenizer([t for t, _ in sentences(200)])
    path = write_jsonl(tmp_path / "train.jsonl", text_rows(100))
    spec = DatasetSpec(source="file:train.jsonl", max_length=16)
    probe = load_text_dataset(spec, {"train": path}, tok, "tok", [], 0, tmp_path / "probe")
    tokens = sum(x.nbytes for x in (probe.x_train, probe.x_val, probe.x_test))
    cache = tmp_path / "cache"
    old = LogitCache(cache).put("old", {"val": np.zeros((tokens // 4, 1), np.float32)})
    heard: list[str] = []
    load_text_dataset(spec, {"train": path}, tok, "tok", [], 0, cache,
                      Limits(cache_max_bytes=tokens * 3 // 2), on_evict=heard.append)  # fmt: skip
    assert len(heard) == 2 and heard[0].startswith("evicted logits old (")
    assert not old.exists() and [e.kind for e in list_entries(cache)] == ["tokens"]


@pytest.mark.slow  # transformers and a (cancelled) text job: ~15 s on the loaded machine
def test_a_text_job_reports_the_evictions_its_tokens_caused(tmp_path):
    from akd_core.errors import JobCancelled
    from akd_core.events import ProgressEvent
    from akd_core.pipeline import run_job
    from akd_core.spec import parse_spec
    from tests.akd_core.text_support import make_text_teacher, text_rows, write_jsonl

    make_text_teacher(tmp_path / "teacher", layers=1, rows=32, epochs=0)  # never run: cancelled
    write_jsonl(tmp_path / "train.jsonl", text_rows(100))
    spec = parse_spec({
        "teacher": {"source": f"file:{tmp_path / 'teacher'}"},
        "student": {"arch": "shrink-teacher", "options": {"layers": 1}},
        "dataset": {"source": f"file:{tmp_path / 'train.jsonl'}", "max_length": 16},
        "device": "cpu",
    })  # fmt: skip
    cache, events = tmp_path / "cache", list[ProgressEvent]()
    old = LogitCache(cache).put("old", {"val": np.zeros((KIB, 1), np.float32)})  # 4 KiB
    with pytest.raises(JobCancelled):  # stopped before the teacher runs
        run_job(spec, tmp_path / "out", cache_dir=cache, limits=Limits(cache_max_bytes=KIB),
                on_event=events.append, should_cancel=lambda: True)  # fmt: skip
    said = [(e.stage, e.message) for e in events if e.kind == "log" and "evicted" in e.message]
    assert said == [("loading", "evicted logits old (4.1 KiB, least recently used)")]
    assert not old.exists()
