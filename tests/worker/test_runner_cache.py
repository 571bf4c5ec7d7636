"""The worker keeps its cache folder under AKD_CACHE_MAX_GB after each job, and says what it removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from akd_core.cache import LogitCache
from akd_core.cache_entries import list_entries
from akd_service.config import Settings
from tests.worker.test_runner import FakeRun, events


class CachingRun(FakeRun):
    """A fake run that, like a real one, leaves a logit entry in the cache folder it is given."""

    def __call__(self, spec: Any, out_dir: Path, **kw: Any) -> dict[str, Any]:
        LogitCache(kw["cache_dir"]).put("a" * 32, {"val": np.zeros((256, 4), np.float32)})
        return super().__call__(spec, out_dir, **kw)


def test_after_a_job_the_cache_is_pruned_to_the_cap_and_the_job_says_so(settings, make_job):
    settings.cache_max_gb = 0.0  # keep nothing that no job holds
    job_id = make_job()
    run = CachingRun()
    from worker.runner import execute_job

    assert execute_job(job_id, "w1", settings=settings, run_job=run) == "succeeded"
    assert run.calls[0]["archive_limits"].cache_max_bytes == 0  # the pre-write check's cap
    assert list_entries(settings.cache) == []
    logged = [d for k, d in events(settings, job_id) if k == "log" and "evicted" in d["message"]]
    assert logged == [
        {"message": f"evicted logits {'a' * 12} (4.1 KiB, least recently used)", "attempt": 1}
    ]
    assert events(settings, job_id)[-1] == ("state", {"state": "succeeded"})


def test_the_default_cap_keeps_a_small_cache_whole(settings: Settings, make_job):
    job_id = make_job()
    from worker.runner import execute_job

    assert execute_job(job_id, "w1", settings=settings, run_job=CachingRun()) == "succeeded"
    assert [e.kind for e in list_entries(settings.cache)] == ["logits"]
    assert not [d for k, d in events(settings, job_id) if "evicted" in str(d)]
