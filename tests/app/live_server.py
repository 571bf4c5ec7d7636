"""Run the API as a real uvicorn process for tests that need real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_process(
    data_dir: Path, env: dict[str, str], host: str = "127.0.0.1", wait_path: str = "/healthz"
) -> Iterator[tuple[str, int]]:
    """Start `uvicorn --factory app.main:create_app` on host; yield (base url, port) once up."""
    port = free_port(host)
    full_env = {**os.environ, "AKD_DATA_DIR": str(data_dir), **env}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    cmd += ["--host", host, "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=full_env, cwd=REPO)
    netloc = f"[{host}]" if ":" in host else host
    url = f"http://{netloc}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}{wait_path}", timeout=2)
                break  # any answer means the server is up
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the API process exited at start"
            assert time.monotonic() < deadline, "the API did not answer within 60 s"
            time.sleep(0.2)
        yield url, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
