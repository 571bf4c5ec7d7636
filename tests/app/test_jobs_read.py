"""Listing, showing, cancelling jobs; the event stream; artifact downloads."""

from __future__ import annotations

import pytest
from app_support import assert_problem

from akd_service.db import jobs as job_store
from akd_service.db.session import session_scope


def _new_job(settings, owner: str = "local") -> str:
    with session_scope(settings) as s:
        return job_store.create_job(s, owner, {"student": {"arch": "mlp"}}, 3).id


def _finish(settings, job_id: str, state: str = "succeeded", artifacts=None) -> None:
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job_id, "w1", 60) is not None
        assert job_store.finish_job(s, job_id, "w1", state, artifacts=artifacts)


def test_list_is_newest_first_and_pages_do_not_overlap(client, settings):
    made = [_new_job(settings) for _ in range(5)]
    r = client.get("/jobs", params={"limit": 2})
    page1 = r.json()
    assert [j["id"] for j in page1["items"]] == made[::-1][:2]
    page2 = client.get("/jobs", params={"limit": 2, "cursor": page1["next"]}).json()
    page3 = client.get("/jobs", params={"limit": 2, "cursor": page2["next"]}).json()
    seen = [j["id"] for p in (page1, page2, page3) for j in p["items"]]
    assert seen == made[::-1]
    assert page3["next"] is None
    by_offset = client.get("/jobs", params={"limit": 2, "offset": 2}).json()
    assert [j["id"] for j in by_offset["items"]] == made[::-1][2:4]


def test_list_rejects_bad_paging_arguments(client):
    assert_problem(client.get("/jobs", params={"limit": 0}), 422, field="limit")
    assert_problem(client.get("/jobs", params={"limit": 101}), 422, field="limit")
    assert_problem(client.get("/jobs", params={"cursor": "garbage!"}), 422, field="cursor")


def test_unknown_job_is_404_problem(client):
    assert_problem(client.get("/jobs/nope"), 404)
    assert_problem(client.post("/jobs/nope/cancel"), 404)
    assert_problem(client.get("/jobs/nope/events"), 404)


def test_cancel_a_queued_job_cancels_it_at_once(client, settings):
    job_id = _new_job(settings)
    r = client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 202
    assert r.json()["state"] == "cancelled"
    assert client.get(f"/jobs/{job_id}").json()["finished_at"] is not None


def test_cancel_a_running_job_flags_it_for_the_worker(client, settings):
    job_id = _new_job(settings)
    with session_scope(settings) as s:
        job_store.claim_job(s, job_id, "w1", 60)
    r = client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 202
    assert r.json()["state"] == "cancelling"
    with session_scope(settings) as s:
        assert job_store.is_cancel_requested(s, job_id)
        # The worker sees the flag, stops, and records the outcome under its lease.
        assert job_store.finish_job(s, job_id, "w1", "cancelled")
    assert client.get(f"/jobs/{job_id}").json()["state"] == "cancelled"


def test_cancel_a_finished_job_is_409(client, settings):
    job_id = _new_job(settings)
    _finish(settings, job_id)
    body = assert_problem(client.post(f"/jobs/{job_id}/cancel"), 409)
    assert "succeeded" in body["detail"]


def _read_sse(client, url: str, **kw) -> list[dict]:
    frames = []
    with client.stream("GET", url, **kw) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            frames.append(fields)
    return frames


def test_events_replay_from_last_event_id_and_end_with_the_job(client, settings):
    job_id = _new_job(settings)
    with session_scope(settings) as s:
        ids = [
            job_store.add_event(s, job_id, "epoch", {"epoch": i, "progress": i / 3}).id
            for i in range(3)
        ]
    _finish(settings, job_id)
    every = _read_sse(client, f"/jobs/{job_id}/events")
    kinds = [f["event"] for f in every]
    assert kinds[0] == "state" and kinds[-1] == "end"
    assert kinds.count("epoch") == 3
    replay = _read_sse(client, f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(ids[1])})
    epochs = [f for f in replay if f["event"] == "epoch"]
    assert len(epochs) == 1 and int(epochs[0]["id"]) == ids[2]
    assert '"epoch":2' in epochs[0]["data"]
    by_query = _read_sse(client, f"/jobs/{job_id}/events", params={"last_event_id": ids[2]})
    assert [f["event"] for f in by_query] == ["state", "state", "end"]  # running, succeeded


def test_events_with_a_bad_last_event_id_is_422(client, settings):
    job_id = _new_job(settings)
    r = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "abc"})
    assert_problem(r, 422, field="Last-Event-ID")


@pytest.fixture
def finished_job(settings) -> str:
    job_id = _new_job(settings)
    out = settings.artifacts / job_id
    out.mkdir(parents=True)
    (out / "report.json").write_text('{"student": {"accuracy": 0.9}}')
    (out / "student.onnx").write_bytes(b"\x08\x07onnx")
    (out / "secret.txt").write_text("not listed")
    (settings.artifacts / "other.txt").write_text("outside")
    _finish(settings, job_id, artifacts=["report.json", "student.onnx"])
    return job_id


def test_artifacts_download_with_media_types(client, finished_job):
    job = client.get(f"/jobs/{finished_job}").json()
    assert set(job["links"]["artifacts"]) == {"report.json", "student.onnx"}
    r = client.get(job["links"]["artifacts"]["report.json"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["student"]["accuracy"] == 0.9
    r = client.get(f"/jobs/{finished_job}/artifacts/student.onnx")
    assert r.content == b"\x08\x07onnx"
    assert r.headers["content-type"] == "application/octet-stream"


def test_unlisted_and_traversal_artifact_names_are_404(client, finished_job):
    base = f"/jobs/{finished_job}/artifacts"
    for name in (
        "secret.txt",
        "nothing.onnx",
        "..%2Fother.txt",
        "..%2F..%2Fakd.db",
        "%2Fetc%2Fpasswd",
    ):
        r = client.get(f"{base}/{name}")
        assert_problem(r, 404)
        assert b"outside" not in r.content


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("header", "9" * 5000),  # beyond int()'s digit limit
        ("header", "99999999999999999999"),  # 20 digits: past SQLite's 64-bit integers
        ("header", str(2**63)),
        ("header", "0" * 20),  # 20 digits, even with a small value
        ("query", "9" * 5000),
        ("query", "99999999999999999999"),
        ("query", str(2**63)),
    ],
)
def test_events_with_an_out_of_range_last_event_id_is_422(client, settings, where, value):
    job_id = _new_job(settings)
    if where == "header":
        r = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": value})
        assert_problem(r, 422, field="Last-Event-ID")
    else:
        r = client.get(f"/jobs/{job_id}/events", params={"last_event_id": value})
        assert_problem(r, 422, field="last_event_id")


def test_events_accept_the_largest_64_bit_last_event_id(client, settings):
    job_id = _new_job(settings)
    _finish(settings, job_id)
    top = str(2**63 - 1)
    for kwargs in ({"headers": {"Last-Event-ID": top}}, {"params": {"last_event_id": top}}):
        frames = _read_sse(client, f"/jobs/{job_id}/events", **kwargs)
        assert [f["event"] for f in frames] == ["end"]
