"""`akd serve`: the API, a worker, an embedded Redis and SQLite on one machine, one command."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import ValidationError

from akd_core.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from akd_service.config import Settings

GRACE_S = 10.0  # how long a child may take to stop before it is killed
READY_TIMEOUT_S = 60.0
MAX_RESTARTS = 5  # per child, within RESTART_WINDOW_S, before the supervisor gives up
RESTART_WINDOW_S = 60.0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `akd serve`."""
    parser.add_argument("--host", help="bind address (default 127.0.0.1; AKD_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, help="all local state (default ./akd-data)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="concurrent jobs (default 1); on a GPU host each worker process gets its own card",
    )
    parser.add_argument(
        "--gpus",
        help="cards the workers share out, one each, e.g. 0,1,2,3 (AKD_GPUS; default: every GPU)",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="API (uvicorn) processes sharing the port (default 1); per-key caps apply per process",
    )
    parser.add_argument("--verbose", action="store_true", help="children log to this terminal")


class Child:
    """One supervised child process in its own process group."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path | None) -> None:
        self.name, self.cmd, self.env, self.log = name, cmd, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        """Start (or restart) the process, appending its output to its log file."""
        out: IO[bytes] | None = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = self.log.open("ab")
        # A new session: Ctrl-C reaches only the supervisor, which stops children in order.
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        if out is not None:
            out.close()
        self.starts.append(time.monotonic())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def may_restart(self) -> bool:
        """False once the child crashed MAX_RESTARTS times within RESTART_WINDOW_S."""
        now = time.monotonic()
        return len([t for t in self.starts if now - t < RESTART_WINDOW_S]) <= MAX_RESTARTS

    def stop(self, first_signal: int = signal.SIGTERM, grace_s: float = GRACE_S) -> None:
        """Signal the process, wait up to grace_s, then kill its whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
                os.kill(self.proc.pid, first_signal)
                self.proc.wait(grace_s)
        # Also reap anything the child left behind (e.g. the worker's pool processes).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_ready(
    url: str,
    alive: Callable[[], bool],
    timeout_s: float = READY_TIMEOUT_S,
    stop: threading.Event | None = None,
) -> bool:
    """Poll /healthz until the API answers (False if `alive()` turns False, or on timeout)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        if not alive():
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


class Supervisor:
    """Starts the embedded Redis, the API and a worker; restarts crashes; stops all in order."""

    def __init__(
        self, settings: Settings, workers: int = 1, verbose: bool = False, api_workers: int = 1
    ) -> None:
        from akd_service.broker import EmbeddedRedis

        self.settings = settings
        self.workers = workers
        self.api_workers = api_workers
        self.verbose = verbose
        self.token = uuid.uuid4().hex[:8]
        # Leases of our worker start with this, so we can release them when we stop it.
        self.worker_prefix = f"akd-serve-{self.token}@"
        self.redis = (
            None
            if settings.broker_url
            else EmbeddedRedis(settings.embedded_redis_socket, settings.data_dir / "redis")
        )
        self.children: list[Child] = []
        self.reaper: Any = None
        self.stopping = threading.Event()
        self.url = f"http://{_url_host(settings.host)}:{settings.port}"

    def _env(self, broker_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            AKD_DATA_DIR=str(self.settings.data_dir.resolve()),
            AKD_BROKER_URL=broker_url,
            AKD_HOST=self.settings.host,
            AKD_PORT=str(self.settings.port),
        )
        if self.settings.gpus:  # the worker's pool children take one card each from it
            env["AKD_GPUS"] = self.settings.gpus
        return env

    def start(self) -> None:
        """Bring everything up; raises RuntimeError with a message if a part cannot start."""
        from akd_service.db.migrate import upgrade
        from app.api.nodelay import UVICORN_HTTP

        self.settings.ensure_dirs()
        upgrade(self.settings)
        broker = self.redis.start() if self.redis else self.settings.broker_url
        assert broker is not None  # no broker_url means the embedded Redis above
        # From here on every part is told this broker explicitly: the children by their
        # environment, the reaper (and its requeueing) by the queue it is given.
        self.settings = self.settings.model_copy(update={"broker_url": broker})
        env = self._env(broker)
        logs = None if self.verbose else self.settings.data_dir / "logs"
        py = sys.executable
        api = Child(
            "api",
            [py, "-m", "uvicorn", "--factory", "app.main:create_app",
             "--host", self.settings.host, "--port", str(self.settings.port),
             "--timeout-graceful-shutdown", "3", "--log-level", "warning",
             "--workers", str(self.api_workers), "--http", UVICORN_HTTP],
            env, logs / "api.log" if logs else None,
        )  # fmt: skip
        worker = Child(
            "worker",
            [py, "-m", "celery", "-A", "worker.celery_app", "worker",
             "--pool", "prefork", "--concurrency", str(self.workers),
             "--hostname", f"{self.worker_prefix}%h", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env, logs / "worker.log" if logs else None,
        )  # fmt: skip
        self.children = [api, worker]
        for child in self.children:
            child.start()
        if not wait_ready(self.url, lambda: api.alive, stop=self.stopping):
            raise RuntimeError(
                f"the API did not start on {self.url}" + (f"; see {api.log}" if api.log else "")
            )
        self._start_reaper()

    def _start_reaper(self) -> None:
        from akd_service.queue import CeleryQueue
        from worker.reaper import Reaper

        self.reaper = Reaper(self.settings, CeleryQueue.from_settings(self.settings))
        # Jobs queued or running when the service last stopped are resumed now.
        resumed = self.reaper.requeue_unfinished()
        if resumed:
            print(f"resuming {len(resumed)} unfinished job(s)", flush=True)
        self.reaper.start()

    def watch(self) -> None:
        """Until asked to stop: restart children that exit, within a crash budget."""
        while not self.stopping.wait(0.5):
            for child in self.children:
                if child.alive or self.stopping.is_set():
                    continue
                code = child.proc.returncode if child.proc else None
                if not child.may_restart():
                    print(f"{child.name} keeps exiting (code {code}); stopping", file=sys.stderr)
                    self.stopping.set()
                    break
                print(f"{child.name} exited with code {code}; restarting", file=sys.stderr)
                if child.name == "worker":
                    self._release_leases()
                child.start()

    def _release_leases(self) -> None:
        from worker.reaper import release_leases

        try:
            released = release_leases(self.settings, self.worker_prefix)
        except Exception as exc:  # never block shutdown on the database
            print(f"could not release job leases: {exc}", file=sys.stderr)
            return
        if released:
            print(f"{len(released)} running job(s) will resume on the next start", flush=True)

    def shutdown(self) -> None:
        """Stop the reaper, the worker (its jobs resume later), the API, then Redis."""
        self.stopping.set()
        if self.reaper is not None:
            self.reaper.stop()
        by_name = {c.name: c for c in self.children}
        if "worker" in by_name:
            # Cold shutdown (SIGQUIT): a warm one would wait for a whole training run.
            # The job keeps its checkpoints and resumes from them on the next start.
            by_name["worker"].stop(signal.SIGQUIT)
            self._release_leases()
        if "api" in by_name:
            by_name["api"].stop(signal.SIGTERM)
        if self.redis is not None:
            self.redis.stop()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _lock_data_dir(data_dir: Path) -> IO[str] | None:
    """An exclusive lock on data_dir (None if another `akd serve` holds it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = (data_dir / "serve.lock").open("w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def serve_settings(args: argparse.Namespace) -> Settings:
    """The settings of this run: the AKD_* environment, overridden by the command's options.

    Nothing is written back to the environment: the children get theirs from Supervisor._env.
    """
    from akd_service.config import Settings

    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.resolve()
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port if args.port else free_port()
    if getattr(args, "gpus", None) is not None:
        overrides["gpus"] = args.gpus
    return Settings(**overrides)


def serve_main(args: argparse.Namespace) -> int:
    """Run `akd serve` until Ctrl-C or SIGTERM; returns the exit code."""
    for flag, value in (("--workers", args.workers), ("--api-workers", args.api_workers)):
        if value < 1:
            print(f"error: {flag} must be at least 1, not {value}", file=sys.stderr)
            return EXIT_USAGE
    try:
        settings = serve_settings(args)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            print(f"error: {where + ': ' if where else ''}{msg}", file=sys.stderr)
        return EXIT_USAGE
    lock = _lock_data_dir(settings.data_dir)
    if lock is None:
        print(
            f"error: another `akd serve` is using {settings.data_dir}; stop it or pick "
            "another --data-dir",
            file=sys.stderr,
        )
        return EXIT_USAGE

    sup = Supervisor(
        settings, workers=args.workers, verbose=args.verbose, api_workers=args.api_workers
    )

    def _on_signal(signum: int, _frame: Any) -> None:
        sup.stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        sup.start()
        keys = "on" if settings.require_keys else "off (loopback only)"
        print(f"AKD serving on {sup.url}  (docs: {sup.url}/docs, API keys {keys})", flush=True)
        print(f"data in {settings.data_dir.resolve()}; Ctrl-C to stop", flush=True)
        sup.watch()
        return EXIT_OK
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        print("stopping...", flush=True)
        sup.shutdown()
        lock.close()
        print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m akd_tools.serve`, the same as `akd serve`."""
    parser = argparse.ArgumentParser(prog="akd serve", description=__doc__)
    add_serve_arguments(parser)
    return serve_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
