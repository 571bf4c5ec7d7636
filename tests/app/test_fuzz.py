"""Malformed requests to every route: always a 4xx problem+json (or success), never a 500."""

from __future__ import annotations

import random

from app_support import (
    LOCAL_URL,
    digits_onnx_bytes,
    make_settings,
    npz_bytes,
    onnx_bytes,
    spec_for,
    upload_id,
)
from fastapi.testclient import TestClient

from akd_service.db.session import session_scope
from akd_service.keys import create_key
from app.main import create_app

BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"{",
    b'{"teacher": null}',
    b'{"teacher": {"source": 5}, "student": [], "dataset": {}}',
    b'{"teacher": {"source": "upload:' + b"a" * 5000 + b'"}}',
    b"\xff\xfe\x00garbage",
    b'{"a": ' * 2000 + b"1" + b"}" * 2000,
    '{"student": {"arch": "\u202e\u0000"}}'.encode(),
    b"--xyz\r\nContent-Disposition: form-data; name=file; filename=a\r\n\r\nabc",
    b"--xyz--\r\n",
]
CONTENT_TYPES = [
    "application/json",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "text/plain",
    "application/x-www-form-urlencoded",
]
HEADERS: list[dict[str, str | bytes]] = [
    {},
    {"Last-Event-ID": "-1"},
    {"Last-Event-ID": "99999999999999999999999"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer \u00e9t\u00e9".encode()},
    {"Authorization": b"Bearer \xff\xfe"},
    {"Content-Length": "5"},
]


def _routes(job_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", "/uploads"),
        ("POST", "/jobs"),
        ("GET", "/jobs?limit=abc&cursor=%00&offset=-1"),
        ("GET", "/jobs?state=exploded"),
        ("GET", f"/jobs/{job_id}"),
        ("GET", "/jobs/%00%ff"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("GET", f"/jobs/{job_id}/events?last_event_id=x"),
        ("GET", f"/jobs/{job_id}/artifacts/..%2F..%2Fakd.db"),
        ("GET", f"/jobs/{job_id}/artifacts/" + "a" * 3000),
        ("DELETE", f"/jobs/{job_id}"),
        ("PUT", "/uploads"),
        ("GET", "/schema/job-spec?x=1"),
        ("GET", "/static/../app/main.py"),
        ("PATCH", "/healthz"),
        ("GET", "/no/such/route"),
    ]


def _fuzz(client: TestClient, job_id: str, extra: dict[str, str] | None = None) -> set[int]:
    rng = random.Random(0)
    seen = set()
    for method, url in _routes(job_id):
        for _ in range(4):
            body = rng.choice(BODIES)
            headers = {"Content-Type": rng.choice(CONTENT_TYPES), **rng.choice(HEADERS)}
            if extra and "Authorization" not in headers:
                headers.update(extra)
            headers.pop("Content-Length", None)  # a lying length would hang the test transport
            r = client.request(method, url, content=body, headers=headers)
            seen.add(r.status_code)
            assert r.status_code < 500, (method, url, body[:60], headers, r.text)
            if r.status_code >= 400:
                ctype = r.headers["content-type"]
                assert ctype.startswith("application/problem+json"), (method, url, r.text[:200])
                assert r.json()["status"] == r.status_code
    return seen


def test_no_malformed_request_gets_a_server_error(client):
    teacher = upload_id(client, "t.onnx", onnx_bytes())
    job = client.post("/jobs", json=spec_for(teacher, upload_id(client, "d.npz", npz_bytes())))
    job_id = job.json()["id"]
    client.post(f"/jobs/{job_id}/cancel")  # final, so event streams end at once
    assert {404, 405, 422} <= _fuzz(client, job_id)


def test_no_malformed_request_gets_a_server_error_with_keys_on(tmp_path, queue):
    settings = make_settings(tmp_path, require_keys=True)
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        with session_scope(settings) as s:
            _, key = create_key(s, "fuzz")
        auth = {"Authorization": f"Bearer {key}"}
        teacher = upload_id(client, "t.onnx", onnx_bytes(), headers=auth)
        data = upload_id(client, "d.npz", npz_bytes(), headers=auth)
        job_id = client.post("/jobs", json=spec_for(teacher, data), headers=auth).json()["id"]
        client.post(f"/jobs/{job_id}/cancel", headers=auth)
        assert {401, 404, 422} <= _fuzz(client, job_id, auth)


def test_every_malformed_body_to_the_write_routes_is_a_4xx(client, settings):
    for url in ("/jobs", "/uploads"):
        for body in BODIES:
            for ctype in CONTENT_TYPES:
                r = client.post(url, content=body, headers={"Content-Type": ctype})
                assert 400 <= r.status_code < 500, (url, body[:60], ctype, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/jobs").json()["items"] == []
    assert not any(p.is_file() for p in settings.uploads.rglob("*"))


def test_specs_no_json_response_could_carry_are_refused(client, settings):
    teacher = upload_id(client, "t.onnx", digits_onnx_bytes())
    base = '{"teacher":{"source":"upload:%s"},"student":{"arch":"mlp","options":%s},"dataset":{"source":"builtin:digits"}}'
    for options in (
        '{"a":' * 500 + "1" + "}" * 500,
        '{"x": NaN}',
        '{"x": 1e400}',
        '{"x": -Infinity}',
    ):
        r = client.post(
            "/jobs", content=base % (teacher, options), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422, (options[:30], r.text)
        assert r.json()["field"] == "spec"
    assert client.get("/jobs").json()["items"] == []


def test_non_finite_metrics_from_a_worker_do_not_break_job_views(client, settings):
    from akd_service.db import jobs as job_store
    from akd_service.db.session import session_scope

    with session_scope(settings) as s:
        job_id = job_store.create_job(s, "local", {}, 3).id
        job_store.claim_job(s, job_id, "w1", 60)
        job_store.finish_job(s, job_id, "w1", "succeeded", metrics={"loss": float("nan")})
    r = client.get(f"/jobs/{job_id}")
    assert r.status_code == 200
    metrics = r.json()["metrics"]  # typed (JobMetrics): unknown keys kept, missing ones null
    assert metrics["loss"] is None and metrics["student_accuracy"] is None
    assert client.get("/jobs").status_code == 200
