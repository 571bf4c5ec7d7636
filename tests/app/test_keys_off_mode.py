"""Keys-off mode serves only this machine: JSON-only writes, loopback Host and socket, same-site."""

from __future__ import annotations

import socket
import subprocess

import httpx
import pytest
from app_support import LOCAL_URL, assert_problem, make_settings, onnx_bytes, upload
from fastapi.testclient import TestClient
from live_server import uvicorn_process

from akd_service.db.session import session_scope
from akd_service.keys import create_key
from app.main import create_app


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_job_spec_in_a_body_a_web_form_can_send_is_415(client, ctype):
    r = client.post(
        "/jobs", content=b'{"student": {"arch": "mlp"}}', headers={"Content-Type": ctype}
    )
    body = assert_problem(r, 415, field="Content-Type")
    assert "application/json" in body["detail"]
    assert client.get("/jobs").json()["items"] == []


def test_a_job_spec_without_a_content_type_is_415(client):
    assert_problem(client.post("/jobs", content=b"{}"), 415, field="Content-Type")


def test_cancel_takes_no_body_or_json_only(client, settings):
    from akd_service.db import jobs as job_store

    with session_scope(settings) as s:
        job_id = job_store.create_job(s, "local", {}, 3).id
    r = client.post(f"/jobs/{job_id}/cancel", content=b"x", headers={"Content-Type": "text/plain"})
    assert_problem(r, 415, field="Content-Type")
    assert client.get(f"/jobs/{job_id}").json()["state"] == "queued"
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "192.0.2.7", "localhost.evil"]
)
def test_a_foreign_host_header_is_refused(client, host):
    r = client.get("/jobs", headers={"Host": host})
    assert "Host" in assert_problem(r, 421, field="Host")["detail"]


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "[::1]"]
)
def test_loopback_host_names_are_served(client, host):
    assert client.get("/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:3000"},  # another local site is another origin
        {"Origin": "http://[::1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
    ],
)
def test_cross_site_uploads_are_refused_and_store_nothing(client, settings, headers):
    r = upload(client, "t.onnx", onnx_bytes(), headers=headers)
    assert "cross-site" in assert_problem(r, 403)["detail"]
    assert not any(p.is_file() for p in settings.uploads.rglob("*"))


def test_same_origin_writes_and_cross_site_reads_are_served(client):
    same = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert upload(client, "t.onnx", onnx_bytes(), headers=same).status_code == 201
    assert client.get("/jobs", headers={"Origin": "http://evil.example"}).status_code == 200


def test_with_keys_on_the_key_is_the_guard(tmp_path, queue):
    settings = make_settings(tmp_path, require_keys=True)
    with TestClient(create_app(settings, queue), base_url="http://api.example.com") as client:
        with session_scope(settings) as s:
            _, key = create_key(s, "k")
        auth = {"Authorization": f"Bearer {key}", "Origin": "http://other.example"}
        assert upload(client, "t.onnx", onnx_bytes(), headers=auth).status_code == 201
        assert client.get("/jobs", headers=auth).status_code == 200


def test_a_keys_off_app_refuses_requests_on_a_public_socket(tmp_path, queue):
    app = create_app(make_settings(tmp_path), queue)
    with TestClient(app, base_url="http://203.0.113.5:8000") as client:
        r = client.get("/healthz", headers={"Host": "localhost"})
        assert "AKD_REQUIRE_KEYS=true" in assert_problem(r, 403)["detail"]
    with TestClient(app, base_url=LOCAL_URL) as client:
        assert client.get("/healthz").status_code == 200


def _public_ipv4() -> str | None:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    for addr in out.stdout.split():
        if "." in addr and not addr.startswith("127."):
            try:
                with socket.socket() as s:
                    s.bind((addr, 0))
                return addr
            except OSError:
                continue
    return None


@pytest.mark.e2e
def test_uvicorn_bound_to_a_public_address_without_keys_serves_nothing(tmp_path):
    addr = _public_ipv4()
    if addr is None:
        print("no non-loopback IPv4 address on this machine (hostname -I)")
        pytest.skip("no non-loopback IPv4 address on this machine (hostname -I)")
    with uvicorn_process(tmp_path / "data", {}, host=addr) as (url, _port):
        for path in ("/healthz", "/jobs", "/docs"):
            r = httpx.get(url + path, timeout=30)
            assert r.status_code == 403, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "AKD_REQUIRE_KEYS=true" in r.json()["detail"]
        r = httpx.post(url + "/jobs", json={}, timeout=30)
        assert r.status_code == 403
