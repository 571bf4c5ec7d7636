"""Time limits: event streams end after their cap, uploads that stall or dawdle get a 408."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from app_support import LOCAL_URL, make_settings
from fastapi.testclient import TestClient
from starlette.requests import Request

from akd_service.db import jobs as job_store
from akd_service.db.session import session_scope
from app.main import create_app
from app.uploads import UploadRejected, UploadTimeouts, receive_upload

HEAD = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\n'
SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/uploads",
    "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
}


@pytest.mark.timeout(60)
def test_an_event_stream_ends_after_its_time_limit(tmp_path, queue):
    settings = make_settings(tmp_path, sse_max_duration_s=0.5)
    with TestClient(create_app(settings, queue), base_url=LOCAL_URL) as client:
        with session_scope(settings) as s:
            job_id = job_store.create_job(s, "local", {}, 3).id  # queued: never ends by itself
        started = time.monotonic()
        r = client.get(f"/jobs/{job_id}/events")
    assert r.status_code == 200
    assert "stream time limit reached" in r.text
    assert time.monotonic() - started < 20


def _run(receive: Any, dest: Any, timeouts: UploadTimeouts) -> UploadRejected:
    with pytest.raises(UploadRejected) as err:
        asyncio.run(receive_upload(Request(SCOPE, receive), dest, 10**6, timeouts))
    return err.value


def test_an_upload_that_goes_silent_is_aborted_and_its_file_removed(tmp_path):
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:
            await asyncio.sleep(30)  # the client stalls
        return {"type": "http.request", "body": HEAD + b"abc", "more_body": True}

    dest = tmp_path / "u1"
    started = time.monotonic()
    err = _run(receive, dest, UploadTimeouts(idle_s=0.3, total_s=60))
    assert err.status == 408
    assert "sent nothing for 0.3 s" in err.message and "AKD_UPLOAD_IDLE_TIMEOUT_S" in err.message
    assert time.monotonic() - started < 10
    assert not dest.exists()


def test_an_upload_that_trickles_past_the_total_limit_is_aborted(tmp_path):
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(0.05)  # never idle long, but slow in all
        body = HEAD if len(calls) == 1 else b"z"
        return {"type": "http.request", "body": body, "more_body": True}

    dest = tmp_path / "u2"
    err = _run(receive, dest, UploadTimeouts(idle_s=5, total_s=0.5))
    assert err.status == 408
    assert "longer than 0.5 s in all" in err.message
    assert "AKD_UPLOAD_TOTAL_TIMEOUT_S" in err.message
    assert not dest.exists()
