"""The job cache under a size cap: LRU eviction, leases across processes, temporaries untouched."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from akd_core.cache import LogitCache
from akd_core.cache_entries import list_entries
from akd_core.cache_lease import Lease, in_use, lease_path
from akd_core.cache_prune import human_bytes, prune, prune_after_job
from akd_core.data import load_dataset, loader
from akd_core.data.store import DataStore
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

KIB = 1024


def _logits(root, key, kib=4):
    """A logit entry of about `kib` KiB."""
    return LogitCache(root).put(key, {"val": np.zeros((kib * KIB // 4, 1), np.float32)})


def _data(root, key, kib=4):
    """A decoded-data entry of about `kib` KiB."""
    x = np.zeros((kib, KIB), np.uint8)
    return DataStore(root / "data").put(key, {"main": (x, np.zeros(kib))}, {"classes": []}).path


def _tokens(root, key, kib=4):
    (root / "tokens").mkdir(parents=True, exist_ok=True)
    np.savez(root / "tokens" / f"{key}.npz", train=np.zeros(kib * KIB, np.uint8))
    return root / "tokens" / f"{key}.npz"


def _used_at(entry, seconds_ago):
    """Make `entry` look last used `seconds_ago` seconds ago."""
    t = time.time() - seconds_ago
    for p in (entry, lease_path(entry)):
        if p.exists():
            os.utime(p, (t, t))


def _keys(root):
    return sorted(e.key for e in list_entries(root))


def test_least_recently_used_entries_go_first_whatever_their_kind(tmp_path):
    paths = {
        "old": _logits(tmp_path, "old"),
        "mid": _data(tmp_path, "mid"),
        "new": _tokens(tmp_path, "new"),
        "newest": _logits(tmp_path, "newest"),
    }
    for age, key in enumerate(["newest", "new", "mid", "old"]):
        _used_at(paths[key], 100 * (age + 1))
    assert [e.key for e in list_entries(tmp_path)] == ["old", "mid", "new", "newest"]
    total = sum(e.size for e in list_entries(tmp_path))
    result = prune(tmp_path, total - 1)  # one entry must go: the least recently used
    assert [e.key for e in result.evicted] == ["old"]
    assert _keys(tmp_path) == ["mid", "new", "newest"]
    assert not paths["old"].exists() and not lease_path(paths["old"]).exists()
    keep = sum(e.size for e in list_entries(tmp_path) if e.key == "newest")
    result = prune(tmp_path, keep)
    assert [e.key for e in result.evicted] == ["mid", "new"]
    assert _keys(tmp_path) == ["newest"]


def test_a_hit_counts_as_a_use_so_a_read_entry_is_kept(tmp_path):
    old, new = _logits(tmp_path, "old"), _logits(tmp_path, "new")
    for key in ("old", "new"):  # each read once before: both have lease files
        LogitCache(tmp_path).get(key)
    gc.collect()
    _used_at(old, 200)
    _used_at(new, 100)
    arrays = LogitCache(tmp_path).get("old")  # a job reads it: now the most recently used
    del arrays
    gc.collect()
    result = prune(tmp_path, sum(e.size for e in list_entries(tmp_path)) - 1)
    assert [e.key for e in result.evicted] == ["new"]
    assert _keys(tmp_path) == ["old"]


def test_the_cap_is_respected_and_what_was_freed_is_reported(tmp_path):
    for i in range(6):
        _used_at(_data(tmp_path, f"d{i}", kib=8), 100 - i)
    cap = 20 * KIB
    result = prune(tmp_path, cap)
    left = list_entries(tmp_path)
    assert sum(e.size for e in left) <= cap < sum(e.size for e in left) + result.evicted[-1].size
    assert [e.key for e in left] == ["d4", "d5"]  # the two most recent fit in 20 KiB
    assert result.freed == sum(e.size for e in result.evicted) and len(result.evicted) == 4
    lines = result.lines()
    assert lines[0].startswith("evicted data d0 (8.") and "least recently used" in lines[0]
    assert lines[-1] == (
        f"cache: freed {human_bytes(result.freed)}; {human_bytes(result.total_after)} left "
        "(cap 20.0 KiB)"
    )
    assert result.freed > 32 * KIB and result.total_after > 16 * KIB  # rows + labels + meta


def test_room_is_made_before_a_new_logit_entry_is_written(tmp_path):
    _used_at(_logits(tmp_path, "old", kib=8), 100)
    heard = []
    cache = LogitCache(tmp_path, max_bytes=12 * KIB, tell=heard.append)
    cache.put("new", {"val": np.zeros((8 * KIB // 4, 1), np.float32)})
    assert _keys(tmp_path) == ["new"]  # old + new (16 KiB and headers) would not fit 12 KiB
    assert heard and heard[0].startswith("evicted logits old")


HOLDER = """
import sys
from pathlib import Path
from akd_core.data.store import DataStore
from akd_core.limits import Limits
stored = DataStore(Path(sys.argv[1])).open(sys.argv[2])
print("held" if stored is not None else "missing", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_an_entry_another_process_reads_is_never_evicted(tmp_path):
    held, spare = _data(tmp_path, "held"), _data(tmp_path, "spare")
    _used_at(held, 200)  # the least recently used: first in line
    _used_at(spare, 100)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "data"), "held"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert in_use(held) and not in_use(spare)
        result = prune(tmp_path, 0)
        assert [e.key for e in result.evicted] == ["spare"]
        assert [e.key for e in result.in_use] == ["held"]
        assert "in use by a running job" in result.lines()[-1]
        assert held.is_dir() and DataStore(tmp_path / "data").open("held") is not None
    finally:
        proc.communicate("", timeout=120)  # the holder exits: its lease goes with it
    assert not in_use(held)
    assert [e.key for e in prune(tmp_path, 0).evicted] == ["held"]


def test_mapped_logits_hold_their_entry_until_the_arrays_are_gone(tmp_path):
    _logits(tmp_path, "k")
    arrays = LogitCache(tmp_path).get("k")
    assert arrays is not None
    view = arrays["val"][:10]  # a slice keeps the mapping, and so the lease, alive
    del arrays
    gc.collect()
    assert prune(tmp_path, 0).evicted == []
    del view
    gc.collect()
    assert [e.key for e in prune(tmp_path, 0).evicted] == ["k"]


def test_an_entry_being_written_is_neither_listed_nor_evicted_nor_read(tmp_path):
    store = DataStore(tmp_path / "data")
    writer = store.writer("k")
    writer.append(np.ones((4, 8), np.uint8))
    writing = Lease.shared(tmp_path / "x.safetensors")  # a logit writer holds its entry's lease
    half_logits = tmp_path / ".x.safetensors.tmp1"  # while its atomic write is in progress
    half_logits.write_bytes(b"\0" * 64)
    assert list_entries(tmp_path) == []
    assert store.open("k") is None  # a reader decodes it itself rather than read half of one
    assert prune(tmp_path, 0).evicted == []
    assert writer.tmp.is_dir() and half_logits.exists()
    writing.release()
    stored = writer.commit({"main": np.zeros(4)}, {"classes": []})
    del stored
    gc.collect()
    assert _keys(tmp_path) == ["k"]  # committed: an entry like any other
    assert [e.key for e in prune(tmp_path, 0).evicted] == ["k"]


def test_a_writer_holds_its_key_until_the_job_has_the_entry_open(tmp_path):
    store = DataStore(tmp_path / "data")
    writer = store.writer("k")
    writer.append(np.ones((4, 8), np.uint8))
    assert Lease.exclusive(store.entry("k")) is None  # what an evictor would need
    writer.abort()
    assert Lease.exclusive(store.entry("k")) is not None


def test_a_job_after_eviction_decodes_its_data_again(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (60, 8, 8, 3), np.uint8),
             y=np.arange(60) % 3)  # fmt: skip
    decoded = []
    real = loader.STREAMERS["npz"]
    monkeypatch.setitem(loader.STREAMERS, "npz", lambda *a: decoded.append(1) or real(*a))
    spec, cache = DatasetSpec(source="file:d.npz"), tmp_path / "cache"
    streamed = Limits(resident_data_bytes=0)  # rows read from the entry batch by batch

    def job():
        return load_dataset(spec, tmp_path / "d.npz", 0, limits=streamed, store_root=cache / "data")

    first = job()
    train = np.array(first.x_train)
    assert not prune(cache, 0).evicted  # the running job holds its entry
    del first  # the job ended
    lines = prune_after_job(cache, 0, None)
    assert lines[0].startswith("evicted data ") and list_entries(cache) == []
    again = job()
    assert len(decoded) == 2  # rebuilt, not read from a vanished entry
    np.testing.assert_array_equal(np.array(again.x_train), train)


def test_no_cap_never_prunes(tmp_path):
    _logits(tmp_path, "k")
    assert prune_after_job(tmp_path, None, None) == []
    assert _keys(tmp_path) == ["k"]


@pytest.mark.parametrize("cap", [0, 10**12])
def test_pruning_a_missing_folder_is_a_no_op(tmp_path, cap):
    assert prune_after_job(tmp_path / "nope", cap, None) == []


def test_a_data_parallel_rank_holds_the_entry_on_its_own(tmp_path):
    import pickle

    _data(tmp_path, "k")
    stored = DataStore(tmp_path / "data").open("k")
    assert stored is not None
    rank_copy = pickle.loads(pickle.dumps(stored.x))  # what a rank receives and reopens
    del stored
    gc.collect()  # the parent let go first
    assert prune(tmp_path, 0).evicted == []
    assert rank_copy[0:2].shape == (2, KIB)
    del rank_copy
    gc.collect()
    assert [e.key for e in prune(tmp_path, 0).evicted] == ["k"]


def test_a_read_only_cache_folder_still_serves_its_entries(tmp_path, monkeypatch):
    _logits(tmp_path, "k")

    def refused(*_args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("akd_core.cache_lease._lock", refused)
    arrays = LogitCache(tmp_path).get("k")  # no lease can be taken: read anyway
    assert arrays is not None and arrays["val"].shape == (KIB, 1)


def test_room_is_made_before_an_npz_is_decoded_into_the_cache(tmp_path):
    cache = tmp_path / "cache"
    _used_at(_logits(cache, "old", kib=32), 100)
    x = np.zeros((48, 1024), np.uint8)  # 48 KiB of rows, known from the .npy header
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(48) % 2)
    cap = 64 * KIB  # the old entry fits alone, not with the new one
    limits = Limits(cache_max_bytes=cap)
    spec = DatasetSpec(source="file:d.npz")
    load_dataset(spec, tmp_path / "d.npz", 0, limits=limits, store_root=cache / "data")
    assert [e.kind for e in list_entries(cache)] == ["data"]  # the old logits made room
    assert sum(e.size for e in list_entries(cache)) <= cap


def test_what_a_killed_evictor_left_behind_is_deleted_by_the_next_pass(tmp_path):
    _logits(tmp_path, "k")
    left = tmp_path / "data" / ".evict.abc.x1" / "entry"  # renamed, then the process died
    left.mkdir(parents=True)
    (left / "x.bin").write_bytes(b"\0" * KIB)
    assert prune(tmp_path, 10**9).evicted == []  # under the cap: still cleaned
    assert not left.parent.exists() and _keys(tmp_path) == ["k"]


def test_a_temp_entry_whose_writer_died_is_deleted_and_a_live_ones_kept(tmp_path):
    store = DataStore(tmp_path / "data")
    live, dead = store.writer("live"), store.writer("dead")
    for w in (live, dead):
        w.append(np.ones((4, 8), np.uint8))
    dead._fh.close()
    dead.lease.release()  # what the kernel does when the writing process is killed
    prune(tmp_path, 0)
    assert live.tmp.is_dir() and not dead.tmp.exists()
    assert not lease_path(store.entry("dead")).exists()
    assert live.commit({"main": np.zeros(4)}, {"classes": []}).x[:].sum() == 4 * 8
