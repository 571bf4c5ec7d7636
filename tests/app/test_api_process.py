"""The API as a real uvicorn process: starts from the factory, refuses oversized uploads early."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "AKD_DATA_DIR": str(tmp_path / "data"),
        "AKD_MAX_UPLOAD_BYTES": str(1024 * 1024),
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the API process exited at start"
            assert time.monotonic() < deadline, "the API did not answer within 30 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
