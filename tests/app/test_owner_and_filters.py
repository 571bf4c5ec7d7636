"""Owner checks on artifacts, the 1 MiB spec cap, the ?state= filter and the body of a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from app_support import LOCAL_URL, assert_problem, make_settings
from fastapi.testclient import TestClient

from akd_service.config import Settings
from akd_service.db import job_status
from akd_service.db import jobs as job_store
from akd_service.db.session import session_scope
from akd_service.keys import create_key
from app.api.routes.jobs import MAX_SPEC_BYTES
from app.main import create_app


def _job(settings: Settings, owner: str = "local", state: str | None = None,
         artifacts: dict[str, bytes] | None = None) -> str:  # fmt: skip
    """A job of `owner`, left queued or finished in `state` with `artifacts` on disk."""
    with session_scope(settings) as s:
        job_id = job_store.create_job(s, owner, {"student": {"arch": "mlp"}}, 3).id
    if artifacts:
        out = settings.artifacts / job_id
        out.mkdir(parents=True)
        for name, data in artifacts.items():
            (out / name).write_bytes(data)
    if state is not None:
        with session_scope(settings) as s:
            assert job_store.claim_job(s, job_id, "w1", 60) is not None
            assert job_store.finish_job(s, job_id, "w1", state, artifacts=list(artifacts or []))
    return job_id


@pytest.fixture
def keyed(tmp_path, queue) -> Iterator[tuple[TestClient, Settings, dict[str, Any]]]:
    """A keys-on app with two keys; yields the client, its settings and, per name, id and header."""
    settings = make_settings(tmp_path, require_keys=True)
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        keys: dict[str, Any] = {}
        with session_scope(settings) as s:
            for name in ("alice", "bob"):
                key_id, plaintext = create_key(s, name)
                keys[name] = (key_id, {"Authorization": f"Bearer {plaintext}"})
        yield client, settings, keys


def test_another_keys_artifacts_are_404_and_leak_nothing(keyed):
    client, settings, keys = keyed
    (alice_id, alice), (_, bob) = keys["alice"], keys["bob"]
    job_id = _job(settings, alice_id, "succeeded", {"report.json": b'{"secret": 0.97}'})
    url = f"/jobs/{job_id}/artifacts/report.json"
    assert client.get(url, headers=alice).json() == {"secret": 0.97}
    body = assert_problem(client.get(url, headers=bob), 404)
    assert body["type"].endswith("job-not-found")
    # Bob learns neither the artifact list nor the file: the answer is that of an unknown job.
    assert "report.json" not in body["detail"] and "secret" not in json.dumps(body)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("GET", "/events"), ("POST", "/cancel"), ("GET", "/artifacts/report.json")],
)
def test_every_route_of_a_job_answers_404_for_another_keys_job(keyed, method, path):
    """The OwnedJob routes: bob gets the same 404 for alice's job as for one that never was."""
    client, settings, keys = keyed
    (alice_id, alice), (_, bob) = keys["alice"], keys["bob"]
    job_id = _job(settings, alice_id, "succeeded", {"report.json": b"{}"})
    assert client.request(method, f"/jobs/{job_id}{path}", headers=alice).status_code != 404
    theirs = assert_problem(client.request(method, f"/jobs/{job_id}{path}", headers=bob), 404)
    unknown_id = "f" * len(job_id)
    unknown = assert_problem(client.request(method, f"/jobs/{unknown_id}{path}", headers=bob), 404)
    assert theirs["type"].endswith("job-not-found") and theirs["field"] == "id"
    assert theirs["detail"] == unknown["detail"].replace(unknown_id, job_id)
    # An unknown key, or none, is told so (401) before any job is looked up.
    for headers in ({"Authorization": "Bearer akd_wrong"}, {}):
        assert_problem(client.request(method, f"/jobs/{job_id}{path}", headers=headers), 401)
    # Nothing changed for alice: bob's cancel did not reach her job.
    assert client.get(f"/jobs/{job_id}", headers=alice).json()["state"] == "succeeded"


def test_an_unknown_jobs_artifact_is_404(client):
    body = assert_problem(client.get("/jobs/0123456789abcdef/artifacts/report.json"), 404)
    assert body["type"].endswith("job-not-found")
    assert "0123456789abcdef" in body["detail"]


def _oversized_spec() -> bytes:
    spec = {"student": {"arch": "mlp"}, "dataset": {"source": "builtin:digits"},
            "teacher": {"source": "upload:abc"}, "pad": "x" * MAX_SPEC_BYTES}  # fmt: skip
    return json.dumps(spec).encode()


def test_a_spec_over_1_mib_is_413_whether_declared_or_streamed(client, settings, enqueued):
    body = _oversized_spec()
    headers = {"Content-Type": "application/json"}
    declared = client.post("/jobs", content=body, headers=headers)
    assert "1048576 bytes" in assert_problem(declared, 413)["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold while reading
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    streamed = client.post("/jobs", content=chunks(), headers=headers)
    assert "1048576 bytes" in assert_problem(streamed, 413)["detail"]
    assert client.get("/jobs").json()["items"] == [] and enqueued == []  # nothing was created


def test_state_filter_lists_only_jobs_in_that_state(client, settings):
    queued = _job(settings)
    done = _job(settings, state="succeeded")
    failed = _job(settings, state="failed")
    cancelled = _job(settings, state="cancelled")

    def ids(**params: Any) -> list[str]:
        r = client.get("/jobs", params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["items"]]

    assert ids() == [cancelled, failed, done, queued]
    assert ids(state="succeeded") == [done]
    assert ids(state="queued") == [queued]
    assert ids(state="failed") == [failed]
    assert ids(state="running") == []
    body = assert_problem(client.get("/jobs", params={"state": "done"}), 422, field="state")
    assert "succeeded" in body["detail"]  # the accepted values are named


def test_an_internal_error_is_a_problem_body_without_a_traceback(client, settings, monkeypatch):
    job_id = _job(settings)

    def broken(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError("db password=hunter2 at /srv/akd/app/db/jobs.py line 60")

    monkeypatch.setattr(job_status, "job_status_for_owner", broken)  # the status read
    r = client.get(f"/jobs/{job_id}")
    body = assert_problem(r, 500)
    assert body["type"] == "urn:akd:problem:internal"
    assert body["instance"] == f"/jobs/{job_id}"
    assert "Retry" in body["detail"]
    for leak in ("Traceback", "RuntimeError", "hunter2", "/srv/akd", ".py"):
        assert leak not in r.text
