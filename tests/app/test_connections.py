"""No client can starve the API: open event streams and stalled uploads hold no DB connection."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
from live_server import uvicorn_process

from akd_service.config import Settings
from akd_service.db import jobs as job_store
from akd_service.db.migrate import upgrade
from akd_service.db.session import session_scope
from akd_service.keys import create_key

pytestmark = pytest.mark.e2e

STREAMS = 100
STALLED_UPLOADS = 50


def _seed(data_dir: Path) -> tuple[str, str]:
    """A key and a queued job it owns (its event stream stays open): (key, job id)."""
    settings = Settings(data_dir=data_dir, require_keys=True)
    settings.ensure_dirs()
    upgrade(settings)
    with session_scope(settings) as s:
        key_id, key = create_key(s, "load")
        job_id = job_store.create_job(s, key_id, {}, 3).id
    return key, job_id


def _send(port: int, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def _status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def open_stream(port: int, key: str, job_id: str) -> socket.socket:
    """An SSE request that the client keeps open and never reads."""
    head = f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    return _send(port, head + f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n")


def stalled_upload(port: int, key: str) -> socket.socket:
    """A multipart upload that promises 1 MB, sends its first bytes, then goes silent."""
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.onnx"\r\n\r\nabc'
    head = f"POST /uploads HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
    head += "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n"
    return _send(port, head, part)


def _partials(data_dir: Path) -> list[Path]:
    return list((data_dir / "uploads").rglob(".partial"))


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_open_streams_and_stalled_uploads_leave_the_api_fast(tmp_path):
    data_dir = tmp_path / "data"
    key, job_id = _seed(data_dir)
    env = {
        "AKD_REQUIRE_KEYS": "true",
        "AKD_MAX_STREAMS_PER_KEY": str(STREAMS + 10),
        "AKD_MAX_UPLOADS_PER_KEY": str(STALLED_UPLOADS + 10),
        "AKD_UPLOAD_IDLE_TIMEOUT_S": "10",
        "AKD_SSE_POLL_S": "1",
    }
    auth = {"Authorization": f"Bearer {key}"}
    with uvicorn_process(data_dir, env) as (url, port):
        streams = [open_stream(port, key, job_id) for _ in range(STREAMS)]
        assert all(_status_line(s) == "HTTP/1.1 200 OK" for s in streams)
        uploads = [stalled_upload(port, key) for _ in range(STALLED_UPLOADS)]
        _wait_for(lambda: len(_partials(data_dir)) == STALLED_UPLOADS, 30, "50 .partial files")

        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(5):
                for path, headers in (("/healthz", {}), ("/jobs", auth)):
                    started = time.monotonic()
                    r = client.get(path, headers=headers)
                    elapsed = time.monotonic() - started
                    assert r.status_code == 200, (path, r.status_code, r.text[:300])
                    assert elapsed < 1.0, f"{path} took {elapsed:.2f} s under load"
        # Still stalled while the API answered: the figures above were measured under load.
        assert len(_partials(data_dir)) == STALLED_UPLOADS

        # The idle limit aborts every stalled upload with a 408 and removes its file.
        for sock in uploads:
            sock.settimeout(60)
            assert _status_line(sock) == "HTTP/1.1 408 Request Timeout"
        _wait_for(lambda: not _partials(data_dir), 30, "the .partial files to be removed")
        assert not any(p.is_file() for p in (data_dir / "uploads").rglob("*"))
        for sock in streams + uploads:
            sock.close()


def test_per_key_caps_on_streams_and_uploads_answer_429(tmp_path):
    data_dir = tmp_path / "data"
    key, job_id = _seed(data_dir)
    with session_scope(Settings(data_dir=data_dir, require_keys=True)) as s:
        other_id, other_key = create_key(s, "other")
        other_job = job_store.create_job(s, other_id, {}, 3).id
    env = {"AKD_REQUIRE_KEYS": "true", "AKD_MAX_STREAMS_PER_KEY": "2"}
    env |= {"AKD_MAX_UPLOADS_PER_KEY": "1", "AKD_SSE_POLL_S": "0.2"}
    with uvicorn_process(data_dir, env) as (url, port), httpx.Client(base_url=url) as client:
        events = f"/jobs/{job_id}/events"
        streams = [open_stream(port, key, job_id) for _ in range(2)]
        assert [_status_line(s) for s in streams] == ["HTTP/1.1 200 OK"] * 2
        r = client.get(events, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["retry-after"].isdigit()
        assert "at most 2" in r.json()["detail"]
        assert "AKD_MAX_STREAMS_PER_KEY" in r.json()["detail"]
        # The cap is per key: another key still gets its stream.
        other = open_stream(port, other_key, other_job)
        assert _status_line(other) == "HTTP/1.1 200 OK"
        # A closed stream frees its slot (the server notices the disconnect on its next poll).
        streams.pop().close()
        _wait_for(
            lambda: _status_line(open_stream(port, key, job_id)).endswith("200 OK"), 30, "a slot"
        )

        upload = stalled_upload(port, key)
        _wait_for(lambda: len(_partials(data_dir)) == 1, 30, "the stalled upload")
        files = {"file": ("t.onnx", b"abc")}
        r = client.post("/uploads", files=files, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 429
        assert "AKD_MAX_UPLOADS_PER_KEY" in r.json()["detail"]
        for sock in [*streams, other, upload]:
            sock.close()
