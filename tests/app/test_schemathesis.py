"""schemathesis, all checks, against a real uvicorn process: keys off and keys on, 0 failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from live_server import uvicorn_process
from test_connections import _seed

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")
MAX_EXAMPLES = 10  # per operation and phase: about 600 requests a run, ~15 s


@pytest.mark.timeout(300)
@pytest.mark.parametrize("keys", ["off", "on"])
def test_schemathesis_finds_nothing(tmp_path, keys):
    data_dir = tmp_path / "data"
    env = {"AKD_SSE_MAX_DURATION_S": "2", "AKD_SSE_POLL_S": "0.2"}
    auth: list[str] = []
    if keys == "on":
        key, _job = _seed(data_dir)
        env["AKD_REQUIRE_KEYS"] = "true"
        auth = ["-H", f"Authorization: Bearer {key}"]
    with uvicorn_process(data_dir, env) as (url, _port):
        cmd = [str(ST), "--config-file", str(CONFIG), "run", f"{url}/openapi.json"]
        cmd += ["--checks", "all", "--generation-deterministic", "-n", str(MAX_EXAMPLES)]
        cmd += ["--workers", "1", "--request-timeout", "20", "--no-color", *auth]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    report = out.stdout[-8000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert "No issues found" in out.stdout or "passed" in out.stdout, report
