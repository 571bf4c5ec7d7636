"""Helpers shared by the service benchmarks: a real `akd serve` in a temp dir, and small jobs.

Not a benchmark itself. `Served` starts `akd serve` exactly as a user would (supervisor, API,
worker, embedded Redis, SQLite) on a free loopback port, and stops every process it started.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from akd_tools.serve import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 40.0
MIB = 1024 * 1024

# A small job: digits, MLP student, three epochs in all (what the benchmarks submit).
SMALL_JOB: dict[str, Any] = {
    "student": {"arch": "mlp"},
    "dataset": {"source": "builtin:digits"},
    "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
}


def small_spec(teacher: Path) -> dict[str, Any]:
    """SMALL_JOB with a local ONNX teacher (AKDClient uploads `file:` sources)."""
    return {"teacher": {"source": f"file:{teacher}", "format": "onnx"}, **SMALL_JOB}


def make_teacher(path: Path, epochs: int = 5) -> Path:
    """A small CNN teacher trained on digits here, saved as ONNX (imports torch)."""
    from akd_core.reference_teacher import make_reference_teacher

    out, _acc = make_reference_teacher(path, epochs=epochs)
    return out


def machine() -> str:
    """CPU count, model and current load average (other work here skews figures)."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPU(s), {model}; load average now {load}"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class Served:
    """`akd serve --data-dir DATA --port FREE` as a subprocess; a context manager."""

    def __init__(
        self,
        data_dir: Path,
        log: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        root: Path = ROOT,
    ) -> None:
        self.data_dir = data_dir
        self.root = root  # the checkout whose code serves (another one: a before/after run)
        self.args = list(args or [])  # extra `akd serve` options, e.g. ["--api-workers", "2"]
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Our own AKD_* settings must not leak into the server; only those passed in apply.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AKD_")}
        self.env["PYTHONPATH"] = str(root)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._descendants: list[psutil.Process] = []

    def __enter__(self) -> Served:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start `akd serve` and wait (bounded) until it prints that it is serving."""
        cmd = [sys.executable, "-m", "akd_tools.cli", "serve",
               "--data-dir", str(self.data_dir), "--port", str(self.port), *self.args]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_ready(self.url, lambda: self.proc.poll() is None, READY_TIMEOUT_S):
            raise RuntimeError(f"akd serve not ready ({self.proc.poll()}):\n{self.tail()}")
        self._descendants = psutil.Process(self.proc.pid).children(recursive=True)

    def tail(self, n: int = 30) -> str:
        """The last n lines of the server's output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def api_process(self) -> psutil.Process:
        """The uvicorn child of `akd serve` (the process that answers HTTP)."""
        assert self.proc is not None
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "uvicorn" in child.cmdline():
                    return child
        raise RuntimeError("no uvicorn child under akd serve")

    def api_processes(self) -> list[psutil.Process]:
        """The uvicorn child of `akd serve` and its own children (its worker processes, if any)."""
        api = self.api_process()
        return [api, *api.children(recursive=True)]

    def worker_processes(self) -> list[psutil.Process]:
        """The Celery worker and its pool children."""
        assert self.proc is not None
        found = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "celery" in " ".join(child.cmdline()):
                    found.append(child)
        return found

    def stop(self) -> None:
        """Ctrl-C the supervisor (it stops its children in order), then kill any leftovers."""
        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            self._descendants += psutil.Process(self.proc.pid).children(recursive=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_TIMEOUT_S)
        # Whatever is still running (checked by pid and start time, so never a reused pid)
        # is killed with its process group: the supervisor and each child lead their own.
        for p in self._descendants:
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                if p.is_running():
                    if os.getpgid(p.pid) == p.pid:
                        os.killpg(p.pid, signal.SIGKILL)
                    else:
                        p.kill()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
