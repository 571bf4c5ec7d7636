"""`akd serve` as one command: it starts, refuses unsafe binds, and keeps jobs across restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from akd_tools.client import AKDClient
from akd_tools.serve import free_port
from tests.e2e.conftest import ROOT, SLOW_SPEC, wait_for

pytestmark = pytest.mark.e2e


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKD_")}
    return env | {"PYTHONPATH": str(ROOT), "AKD_HEARTBEAT_S": "0.5", "AKD_STALE_AFTER_S": "3",
                  "OMP_NUM_THREADS": "1"}  # fmt: skip


class Served:
    """One `akd serve` process on a data dir."""

    def __init__(
        self,
        data: Path,
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.data, self.port, self.log = data, port, log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "akd_tools.cli", "serve", "--data-dir", str(data),
                 "--port", str(port), *args],
                env=_env() | (env or {}), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

        def ready() -> bool:
            assert self.proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 60, "akd serve to answer")

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Ctrl-C it and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                pytest.fail("akd serve did not stop within 40 s of Ctrl-C")
        return self.proc.returncode

    def kill(self) -> None:
        """Teardown after a failed test: the children live in process groups of their own."""
        if self.proc.poll() is None:
            try:
                children = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                children = []
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(data: Path, port: int, *args: str) -> Served:
        s = Served(data, port, tmp_path / f"serve{len(started)}.log", args=args)
        started.append(s)
        return s

    try:
        yield start
    finally:
        for s in started:
            s.kill()


def _events(data: Path, job_id: str) -> list[dict[str, Any]]:
    from akd_service.config import Settings
    from akd_service.db.jobs import events_after
    from akd_service.db.session import session_scope

    with session_scope(Settings(data_dir=data)) as session:
        return [e.data | {"event": e.kind} for e in events_after(session, job_id)]


@pytest.mark.slow
def test_a_running_job_resumes_after_serve_restarts(serve, tmp_path, digits_teacher):
    data, port = tmp_path / "data", free_port()
    first = serve(data, port)
    with AKDClient(first.url, api_key="") as client:
        spec = SLOW_SPEC | {"teacher": {"source": f"file:{digits_teacher}"}}
        job_id = client.submit(spec)["id"]
        wait_for(
            lambda: any(e["event"] == "epoch" and e["epoch"] >= 2 for e in _events(data, job_id)),
            120,
            "epoch 2",
        )
    assert first.stop() == 0
    assert "stopped" in first.log.read_text()
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "children outlived akd serve"

    second = serve(data, port)
    with AKDClient(second.url, api_key="") as client:
        final = client.wait(job_id, timeout_s=300)
    assert final["state"] == "succeeded", final.get("failure_reason")
    assert final["attempt"] == 2
    assert second.stop() == 0


def _serve_refused(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `akd serve ARGS` expecting a refusal before anything starts."""
    return subprocess.run(
        [sys.executable, "-m", "akd_tools.cli", "serve", *args, "--data-dir", str(tmp_path / "d")],
        env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    out = _serve_refused(tmp_path, "--host", "0.0.0.0")
    assert out.returncode == 2
    assert "AKD_REQUIRE_KEYS" in out.stderr and "Traceback" not in out.stderr


def _serving_pids(served: Served) -> set[int]:
    """The processes under `akd serve` holding an open client connection to its port."""
    pids = set()
    for proc in psutil.Process(served.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                ours = conn.laddr and conn.laddr.port == served.port
                if ours and conn.status == psutil.CONN_ESTABLISHED:
                    pids.add(proc.pid)
    return pids


def test_api_workers_serve_from_that_many_processes(serve, tmp_path):
    """`--api-workers 2`: two processes accept connections on the port and both answer."""
    served = serve(tmp_path / "data", free_port(), "--api-workers", "2")
    clients: list[httpx.Client] = []
    seen: set[int] = set()
    try:
        # Each client keeps its connection open, so the process that accepted it holds it;
        # new connections go on until two processes have held one (the kernel picks which).
        def both_answer() -> bool:
            client = httpx.Client(base_url=served.url, timeout=10)
            clients.append(client)
            assert client.get("/jobs").json()["items"] == []
            seen.update(_serving_pids(served))
            return len(seen) >= 2

        wait_for(both_answer, 60, "connections held by two API processes", every_s=0.05)
    finally:
        for client in clients:
            client.close()
    # Two of uvicorn's children (its parent only listens; a third child is multiprocessing's
    # resource tracker).
    api = next(p for p in psutil.Process(served.proc.pid).children() if "uvicorn" in p.cmdline())
    assert len(seen) == 2 and seen <= {p.pid for p in api.children()}, (seen, api.children())
    assert served.stop() == 0


def test_serve_refuses_zero_api_workers(tmp_path):
    out = _serve_refused(tmp_path, "--api-workers", "0")
    assert out.returncode == 2
    assert "--api-workers must be at least 1, not 0" in out.stderr
