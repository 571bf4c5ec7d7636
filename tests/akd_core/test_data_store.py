"""The data cache: decoded once and shared, atomic under races, exact reads, streamed .npz."""

from __future__ import annotations

import numpy as np
import pytest

from akd_core.cache_lease import LEASE_DIR
from akd_core.data import load_dataset, loader
from akd_core.data.store import X_FILE, DataStore, StoredArray
from akd_core.data.views import chunked_stats
from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec


def _npz(path, n=60, nhwc=True, **extra):
    rng = np.random.default_rng(0)
    shape = (n, 8, 8, 3) if nhwc else (n, 3, 8, 8)
    np.savez(path, x=rng.integers(0, 256, shape, dtype=np.uint8), y=np.arange(n) % 3, **extra)
    return path


def _spec(**over):
    return DatasetSpec(source="file:d.npz", **over)


def _entries(folder):
    """What a store folder holds besides its lease files."""
    return sorted(p for p in folder.iterdir() if p.name != LEASE_DIR)


def test_a_dataset_is_decoded_once_and_shared_by_later_jobs(tmp_path, monkeypatch):
    path = _npz(tmp_path / "d.npz")
    calls = []
    real = loader.STREAMERS["npz"]

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setitem(loader.STREAMERS, "npz", counted)
    store = tmp_path / "store"
    first = load_dataset(_spec(), path, seed=0, store_root=store)
    second = load_dataset(_spec(normalize="train-mean-std"), path, seed=1, store_root=store)
    assert len(calls) == 1  # the second job (other seed and normalisation) read the cache
    assert [p.name for p in _entries(store)] == [first_key := _entries(store)[0].name]
    assert len(first_key) == 32
    # Another image_size would decode differently: its own entry.
    third = load_dataset(_spec(image_size=16), path, seed=0, store_root=store)
    assert len(calls) == 2 and len(_entries(store)) == 2
    assert first.input_shape == second.input_shape == third.input_shape == (3, 8, 8)


def test_racing_writers_leave_one_entry_that_both_read(tmp_path):
    store = DataStore(tmp_path)
    rows = np.arange(24, dtype=np.uint8).reshape(4, 6)
    a, b = store.writer("k"), store.writer("k")
    a.append(rows)
    b.append(rows)
    first = a.commit({"main": np.arange(4)}, {"classes": []})
    second = b.commit({"main": np.arange(4)}, {"classes": []})  # loses the rename, reads a's
    assert [p.name for p in _entries(tmp_path)] == ["k"]  # no temp folder left behind
    np.testing.assert_array_equal(first.x[:], rows)
    np.testing.assert_array_equal(second.x[:], rows)


def test_a_damaged_entry_is_decoded_again(tmp_path):
    path = _npz(tmp_path / "d.npz")
    store = tmp_path / "store"
    good = load_dataset(_spec(), path, seed=0, store_root=store)
    (entry,) = _entries(store)
    (entry / X_FILE).write_bytes((entry / X_FILE).read_bytes()[:100])  # torn by hand
    again = load_dataset(_spec(), path, seed=0, store_root=store)
    np.testing.assert_array_equal(again.x_train, good.x_train)


def test_stored_rows_read_like_numpy(tmp_path):
    data = np.random.default_rng(1).normal(size=(50, 3, 4)).astype(np.float32)
    (tmp_path / "x.bin").write_bytes(data.tobytes())
    arr = StoredArray(tmp_path / "x.bin", data.dtype, data.shape)
    for key in (slice(None), slice(3, 17), slice(40, 99), slice(0, 50, 7)):
        np.testing.assert_array_equal(arr[key], data[key])
    ids = np.array([49, 0, 7, 8, 9, 7, -1])
    np.testing.assert_array_equal(arr[ids], data[ids])
    np.testing.assert_array_equal(arr[np.array([], int)], data[:0])
    with pytest.raises(IndexError):
        arr[np.array([50])]


def test_chunked_statistics_equal_numpy_over_the_whole_array():
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(1000, 3, 5, 5)).astype(np.float32)
    mean, std = chunked_stats(iter([x[:1], x[1:333], x[333:334], x[334:]]))
    axes = (0, 2, 3)
    np.testing.assert_allclose(mean, x.mean(axis=axes, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=axes, dtype=np.float64), rtol=1e-10)


def test_streamed_splits_are_row_ids_into_one_copy(tmp_path):
    ds = load_dataset(_spec(), _npz(tmp_path / "d.npz", n=90), seed=0, store_root=tmp_path / "s",
                      limits=Limits(resident_data_bytes=0))  # fmt: skip
    views = [ds.x_train, ds.x_val, ds.x_test]
    assert len({id(v.stored) for v in views}) == 1  # type: ignore[attr-defined]
    rows = np.concatenate([v.rows for v in views])  # type: ignore[attr-defined]
    assert sorted(rows.tolist()) == list(range(90))  # disjoint, covering every sample


def test_npz_images_stored_nhwc_are_streamed_as_nchw(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 2, x_test=x[:6], y_test=np.zeros(6))
    ds = load_dataset(_spec(), tmp_path / "d.npz", seed=0, store_root=tmp_path / "s")
    np.testing.assert_array_equal(ds.stored_test, x[:6].transpose(0, 3, 1, 2))
    np.testing.assert_allclose(ds.x_test, x[:6].transpose(0, 3, 1, 2) / np.float32(255))


def test_non_finite_inputs_are_counted_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("akd_core.data.npz.chunk_rows", lambda row_bytes: 7)  # many chunks
    x = np.ones((40, 5), np.float32)
    x[[1, 20, 39], 2] = np.nan
    x[20, 3] = np.inf
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(40) % 2)
    with pytest.raises(DatasetError, match=r"x holds NaN or infinite values in 3 sample\(s\)"):
        load_dataset(_spec(), tmp_path / "d.npz", seed=0, store_root=tmp_path / "s")
    assert not _entries(tmp_path / "s")  # nothing half-written is kept


def test_cached_teacher_logits_are_mapped_from_the_file_not_copied(tmp_path):
    from akd_core.cache import LogitCache

    cache = LogitCache(tmp_path)
    train = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = cache.put("k", {"train": train})
    got = cache.get("k")
    assert got is not None and not got["train"].flags.owndata  # a view of the mapping
    np.testing.assert_array_equal(got["train"], train)
    got["train"][0, 0] = 99.0  # copy-on-write: writable for torch, the file is untouched
    again = cache.get("k")
    assert again is not None
    np.testing.assert_array_equal(again["train"], train)
    assert path.stat().st_size > train.nbytes
