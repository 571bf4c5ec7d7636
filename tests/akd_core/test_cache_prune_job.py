"""A real job under a cache cap: it holds its entries while it runs, lets go at the end, and
runs again (rebuilding them) after they were evicted."""

from __future__ import annotations

import gc

import pytest

from akd_core.cache_entries import list_entries
from akd_core.cache_prune import prune
from akd_core.limits import Limits
from akd_core.pipeline import run_job
from akd_core.spec import parse_spec

pytestmark = pytest.mark.slow


def test_a_job_holds_its_entries_lets_go_and_rebuilds_them_after_eviction(digits_teacher, tmp_path):
    spec = parse_spec({
        "teacher": {"source": f"file:{digits_teacher}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
    })  # fmt: skip
    cache, events = tmp_path / "cache", []
    # Streamed: the job reads its data entry batch by batch, so it must keep it. A 1-byte cap
    # makes the logit write try to evict it, while the job runs.
    limits = Limits(resident_data_bytes=0, cache_max_bytes=1)
    first = run_job(spec, tmp_path / "a", cache_dir=cache, limits=limits, on_event=events.append)
    said = [e.message for e in events if e.kind == "log" and e.stage == "caching_teacher"]
    assert "cache: 1 entry kept although over the cap: in use by a running job" in said
    gc.collect()
    entries = list_entries(cache)
    assert sorted(e.kind for e in entries) == ["data", "logits"]
    assert not any(e.in_use() for e in entries)  # the finished job let go of both
    assert len(prune(cache, 0).evicted) == 2 and list_entries(cache) == []

    second = run_job(spec, tmp_path / "b", cache_dir=cache, limits=limits)
    assert second["timings"]["teacher_cache_hit"] is False  # computed again, not read
    assert second["student"]["accuracy"] == first["student"]["accuracy"]
    assert sorted(e.kind for e in list_entries(cache)) == ["data", "logits"]
