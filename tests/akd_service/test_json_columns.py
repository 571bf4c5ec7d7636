"""JSON columns take what a worker reports, non-finite numbers included, on every backend."""

from __future__ import annotations

import math

from akd_service.db import jobs as job_store
from akd_service.db.models import Event, Job
from akd_service.db.session import session_scope


def test_a_nan_or_infinite_metric_is_stored_as_null_and_the_job_finishes(db_settings):
    # PostgreSQL refuses the NaN token that json.dumps writes: the job could not finish.
    with session_scope(db_settings) as s:
        job_id = job_store.create_job(s, "local", {}, 3).id
        assert job_store.claim_job(s, job_id, "w1", 60) is not None
    metrics = {"loss": math.nan, "gain": math.inf, "nested": {"drop": -math.inf}, "acc": 0.5}
    with session_scope(db_settings) as s:
        job_store.finish_job(s, job_id, "w1", "succeeded", metrics=metrics)
    with session_scope(db_settings) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "succeeded"
        assert job.metrics == {"loss": None, "gain": None, "nested": {"drop": None}, "acc": 0.5}
        s.add(Event(job_id=job_id, kind="progress", data={"eta_s": math.nan, "step": 3}))
    with session_scope(db_settings) as s:
        events = s.query(Event).filter(Event.job_id == job_id, Event.kind == "progress").all()
        assert [e.data for e in events] == [{"eta_s": None, "step": 3}]
