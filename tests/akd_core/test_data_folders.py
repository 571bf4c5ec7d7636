"""Image folders at scale: parallel decoding, progress, and unreadable files listed or skipped."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from akd_core.data import images, load_dataset
from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec


def _folder(root: Path, n: int = 12, mode: str = "RGB", size: int = 10) -> Path:
    """root/{cat,dog}/NN.png (or .jpg every third file) with distinct pixels per image."""
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size, size) if mode == "L" else (size, size, 3)
            img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            ext = "jpg" if i % 3 == 2 else "png"
            img.save(root / cls / f"{i:02d}.{ext}")
    return root


def _spec(**over) -> DatasetSpec:
    return DatasetSpec(source="file:pets", format="imagefolder", **over)


def _break(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).write_bytes(b"\x89PNG not really")


def test_unreadable_files_are_refused_with_their_list_and_count(tmp_path):
    root = _folder(tmp_path / "pets", n=10)
    bad = [f"cat/{i:02d}.png" for i in (0, 1, 3, 4, 6, 7)] + [
        f"dog/{i:02d}.png" for i in (0, 1, 3, 4, 6)
    ]
    _break(root, bad)
    with pytest.raises(DatasetError) as err:
        load_dataset(_spec(), root, seed=0, store_root=tmp_path / "store")
    msg = str(err.value)
    assert err.value.field == "dataset.source"
    assert "11 of its 20 files are not readable images" in msg
    assert "'cat/00.png' is not a readable image" in msg
    assert "and 1 more" in msg and "'dog/06.png'" not in msg  # the first 10 are named
    assert "dataset.skip_bad_files" in msg
    # A refused dataset leaves nothing in the cache (no entry, no temp folder); only the
    # folder of lock files that cache leases use may remain.
    assert [p.name for p in (tmp_path / "store").iterdir()] in ([], [".leases"])


def test_skip_bad_files_leaves_them_out_and_lists_them(tmp_path):
    root = _folder(tmp_path / "pets", n=10)
    _break(root, ["cat/03.png", "dog/04.png"])
    ds = load_dataset(_spec(skip_bad_files=True, val_fraction=0.2, test_fraction=0.2), root,
                      seed=0, store_root=tmp_path / "store")  # fmt: skip
    assert ds.skipped == ["cat/03.png", "dog/04.png"]
    assert ds.summary()["skipped_files"] == 2
    assert sum(ds.summary()["sizes"].values()) == 18


def test_parallel_decoding_gives_the_sequential_rows_and_reports_progress(tmp_path, monkeypatch):
    root = _folder(tmp_path / "pets", n=30)
    monkeypatch.setattr(images, "DECODE_CHUNK", 16)  # several chunks, several events
    seen: list[tuple[int, int]] = []
    spec = _spec(image_size=8)
    parallel = load_dataset(
        spec, root, seed=0, store_root=tmp_path / "a", on_progress=lambda d, t: seen.append((d, t))
    )
    monkeypatch.setattr(images, "DECODE_THREADS", 1)
    sequential = load_dataset(spec, root, seed=0, store_root=tmp_path / "b")
    assert images.DECODE_THREADS == 1 and parallel.x_train.shape[1:] == (3, 8, 8)
    np.testing.assert_array_equal(parallel.x_train, sequential.x_train)
    np.testing.assert_array_equal(parallel.y_train, sequential.y_train)
    assert seen == [(16, 60), (32, 60), (48, 60), (60, 60)]


def test_grayscale_folders_keep_one_channel_and_mixed_ones_three(tmp_path):
    gray = load_dataset(
        _spec(), _folder(tmp_path / "g", mode="L"), seed=0, store_root=tmp_path / "s"
    )
    assert gray.input_shape == (1, 10, 10)
    mixed_root = _folder(tmp_path / "m", mode="L")
    Image.new("RGB", (10, 10), (200, 10, 10)).save(mixed_root / "cat" / "zz.png")
    mixed = load_dataset(_spec(), mixed_root, seed=0, store_root=tmp_path / "s")
    assert mixed.input_shape == (3, 10, 10)
    x = np.concatenate(
        [np.asarray(mixed.x_train), np.asarray(mixed.x_val), np.asarray(mixed.x_test)]
    )
    # Grayscale images are repeated into all three channels, as before.
    assert any(np.array_equal(s[0], s[1]) and np.array_equal(s[1], s[2]) for s in x)


def test_a_streamed_folder_reads_the_same_inputs_as_a_resident_one(tmp_path):
    root = _folder(tmp_path / "pets", n=20)
    spec = _spec(normalize="train-mean-std")
    resident = load_dataset(spec, root, seed=0, store_root=tmp_path / "s")
    streamed = load_dataset(spec, root, seed=0, store_root=tmp_path / "s",
                            limits=Limits(resident_data_bytes=0))  # fmt: skip
    assert (resident.placement, streamed.placement) == ("resident", "streamed")
    for split in ("x_train", "x_val", "x_test", "stored_val", "stored_test"):
        a, b = getattr(resident, split), getattr(streamed, split)
        assert b.dtype == a.dtype and b.shape == a.shape
        np.testing.assert_array_equal(np.asarray(b), a)
    np.testing.assert_array_equal(
        streamed.x_train[np.array([5, 0, 5])], resident.x_train[[5, 0, 5]]
    )
    assert resident.normalization == streamed.normalization


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buf, format="JPEG")
    return buf.getvalue()


def test_a_truncated_jpeg_is_listed_as_unreadable(tmp_path):
    root = _folder(tmp_path / "pets", n=4)
    (root / "dog" / "cut.jpg").write_bytes(_jpeg_bytes()[:40])
    with pytest.raises(DatasetError, match="'dog/cut.jpg' is not a readable image"):
        load_dataset(_spec(), root, seed=0, store_root=tmp_path / "s")


def test_a_cli_dataset_may_be_an_image_folder_but_a_teacher_must_be_a_file(tmp_path):
    from akd_core.errors import SpecError
    from akd_core.pipeline import resolve_source

    root = _folder(tmp_path / "pets", n=2)
    assert resolve_source(f"file:{root}", None, "dataset.source") == root
    with pytest.raises(SpecError, match="is not a file") as err:
        resolve_source(f"file:{root}", None, "teacher.source")
    assert err.value.field == "teacher.source"


def test_the_progress_bar_counts_decoded_images():
    from akd_core.events import ProgressEvent
    from akd_core.progress_bar import describe

    event = ProgressEvent(kind="log", stage="loading", progress=0.01,
                          extra={"decoded": 1024, "total": 200000})  # fmt: skip
    assert describe(event.to_dict()) == "loading 1024/200000 decoded"


def test_decoding_reports_progress_events_and_can_be_cancelled():
    from akd_core.errors import JobCancelled
    from akd_core.events import Hooks
    from akd_core.pipeline import _decode_progress

    events: list = []
    _decode_progress(Hooks(events.append))(1024, 4096)
    assert [(e.stage, e.extra, round(e.progress, 4)) for e in events] == [
        ("loading", {"decoded": 1024, "total": 4096}, 0.0075)
    ]
    with pytest.raises(JobCancelled):
        _decode_progress(Hooks(events.append, lambda: True))(2048, 4096)
