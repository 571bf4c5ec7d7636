"""The teacher-logit cache: exact round trip, keys per teacher and data, no cross-job hits."""

from __future__ import annotations

import numpy as np
import torch

from akd_core.cache import LogitCache, cache_key
from akd_core.pipeline import run_job
from tests.akd_core import trainer_support as ts


def test_cache_round_trip_is_exact_float32(tmp_path):
    cache = LogitCache(tmp_path / "cache")
    key = cache_key("teacher-a", "data-a")
    assert cache.get(key) is None  # nothing stored yet
    train = np.array([[1.5, -2.25, 1e-8], [3.0, 0.0, -7.0]], dtype=np.float64)
    path = cache.put(key, {"train": train, "val": np.ones((1, 3), np.float32)})
    assert path == tmp_path / "cache" / f"{key}.safetensors"
    got = cache.get(key)
    assert got is not None and set(got) == {"train", "val"}
    assert got["train"].dtype == np.float32
    np.testing.assert_array_equal(got["train"], train.astype(np.float32))
    left = [p.name for p in path.parent.iterdir() if p.name != ".leases"]
    assert left == [path.name]  # no temp file left


def test_a_torn_cache_file_is_recomputed_not_fatal(tmp_path):
    cache = LogitCache(tmp_path)
    key = cache_key("t", "d")
    cache.path(key).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{torn")
    assert cache.get(key) is None


def test_cache_key_changes_with_teacher_and_with_data():
    key = cache_key("teacher-a", "data-a")
    assert key == cache_key("teacher-a", "data-a")  # stable across calls and processes
    assert len(key) == 32 and int(key, 16) >= 0
    assert cache_key("teacher-b", "data-a") != key
    assert cache_key("teacher-a", "data-b") != key
    # The separator keeps (a|b, c) and (a, b|c)-style splits of the same text apart.
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_other_teacher_or_other_data_never_hit_the_cache(monkeypatch, tmp_path):
    """Four jobs share one cache folder; only the exact repeat of the first may hit it."""
    teachers = ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    log, _ = ts.spy_training(monkeypatch)
    ts.watch_students(monkeypatch, log)
    cache = tmp_path / "cache"
    data = ts.write_dataset(tmp_path / "data.npz")
    nudged = ts.write_dataset(tmp_path / "nudged.npz", nudge=0.5)
    first = ts.write_teacher(tmp_path / "first.npy")
    # Same argmax (so just as accurate), other logits: a cache hit would be invisible in
    # accuracy but would train the student on the wrong teacher.
    second = ts.write_teacher(tmp_path / "second.npy", scale=3.0)

    def job(teacher, dataset, out):
        del log.anneal_teacher[:], log.teacher_step_inputs[:]
        run_job(ts.job_spec(teacher, dataset), tmp_path / out, cache_dir=cache)
        return outputs.facts.cache_hit, teachers[-1]

    hit, t = job(first, data, "a")
    assert not hit and t.cached_rows == sum(ts.SIZES.values())

    hit, t = job(second, data, "b")
    assert not hit and t.cached_rows == sum(ts.SIZES.values())
    for logits, x in zip(log.anneal_teacher, log.teacher_step_inputs, strict=True):
        assert torch.allclose(logits, t.logits(x), atol=1e-4)  # the second teacher's logits

    hit, t = job(first, nudged, "c")
    assert not hit and t.cached_rows == sum(ts.SIZES.values())

    hit, t = job(first, data, "d")  # the control: the same teacher and data do hit
    assert hit and t.cached_rows == 0
    assert len(list(cache.glob("*.safetensors"))) == 3
