"""Artifact names that are not recorded artifacts get a 404 problem, whatever bytes they hold."""

from __future__ import annotations

import pytest
from app_support import assert_problem

from akd_service.db import jobs as job_store
from akd_service.db.session import session_scope

NAMES = [
    "report.json%00.png",  # NUL: Path.resolve() raised ValueError, a 500
    "%00",
    "report.json%00",
    "a" * 5000,  # past NAME_MAX: the file system would raise ENAMETOOLONG
    "%2e%2e",
    "..%2F..%2Fakd.db",
    "%2Fetc%2Fpasswd",
    "report.json%2Fx",
    "%ff%fe.json",  # not UTF-8
    "report.json%0A",
    "REPORT.JSON",
]


@pytest.fixture
def finished_job(settings) -> str:
    with session_scope(settings) as s:
        job_id = job_store.create_job(s, "local", {}, 3).id
        job_store.claim_job(s, job_id, "w1", 60)
        job_store.finish_job(s, job_id, "w1", "succeeded", artifacts=["report.json"])
    job_dir = settings.artifacts / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "report.json").write_text('{"ok": true}')
    return job_id


@pytest.mark.parametrize("name", NAMES)
def test_an_odd_artifact_name_is_a_404_problem(client, finished_job, name):
    r = client.get(f"/jobs/{finished_job}/artifacts/{name}")
    assert_problem(r, 404)


def test_the_recorded_artifact_is_still_served(client, finished_job):
    r = client.get(f"/jobs/{finished_job}/artifacts/report.json")
    assert r.status_code == 200
    assert r.json() == {"ok": True}
