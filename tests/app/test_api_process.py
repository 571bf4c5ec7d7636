"""The API as a real uvicorn process: starts from the factory, refuses oversized uploads early."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import uvicorn_process

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    env = {"AKD_MAX_UPLOAD_BYTES": str(1024 * 1024)}
    with uvicorn_process(tmp_path / "data", env) as (url, _port):
        yield url


def test_oversized_chunked_upload_is_refused_and_the_server_keeps_serving(server, tmp_path):
    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        for _ in range(800):  # 50 MB on offer against a 1 MB cap
            yield b"z" * 65536
        yield b"\r\n--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    started = time.monotonic()
    r = httpx.post(f"{server}/uploads", content=body(), headers=headers, timeout=30)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert time.monotonic() - started < 20
    assert not any(p.is_file() for p in (tmp_path / "data" / "uploads").rglob("*"))
    assert httpx.get(f"{server}/healthz", timeout=5).json()["status"] == "ok"
    docs = httpx.get(f"{server}/docs", timeout=5)
    assert docs.status_code == 200 and "/static/swagger-ui/swagger-ui-bundle.js" in docs.text
