"""Latency and throughput of the read API under 50 concurrent polling clients.

Starts `akd serve` in a temp data dir on a free loopback port, submits three small real jobs
(digits, a CNN teacher trained here, MLP student, 3 epochs) and waits until they have finished,
so the worker is idle and every status document carries metrics and artifacts. Then, from
this one process (asyncio + httpx, one connection per client, keep-alive, no think time):
  baseline  1 client for --baseline-seconds (default 5)
  load      --clients (default 50) clients for --seconds (default 30)
Each client alternates GET /jobs/{id} (cycling over the three jobs) and GET /jobs; with
--status-only it sends only GET /jobs/{id} (the status read a polling client makes). Printed:
p50/p99 latency per route and overall, requests/s, errors, the CPU used by the API processes
(uvicorn and its worker processes), by this client process and by the whole machine (client
and server share its cores), and the API CPU milliseconds per request.

Before/after in one run: --compare DIR also serves the checkout at DIR (e.g. `git worktree add
/tmp/akd-before <commit>`) with its own data dir and jobs; --floor also serves a trivial ASGI
app (bench/_floor_app.py) under uvicorn with `akd serve`'s HTTP options, which shows what
uvicorn and the socket cost alone; --rounds N alternates all servers N times, and the summary
gives each one's medians.

    .venv/bin/python bench/api_load.py [--seconds 30] [--clients 50] [--baseline-seconds 5]
        [--jobs 3] [--status-only] [--api-workers N] [--compare DIR] [--floor] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from _service import ROOT, Served, machine, make_teacher, percentile, small_spec

from akd_tools.client import AKDClient
from akd_tools.serve import free_port, wait_ready
from app.api.nodelay import UVICORN_HTTP

ROUTE_ONE, ROUTE_LIST = "GET /jobs/{id}", "GET /jobs"
REQUEST_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 300.0
# uvicorn's options as `akd serve` passes them (akd_tools/serve.py), for the floor server.
SERVE_HTTP_OPTIONS = ["--log-level", "warning", "--http", UVICORN_HTTP]


@dataclass
class Record:
    """Latencies (s) of successful requests per route, and failures."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started: list[tuple[float, float]] = field(default_factory=list)  # (latency, start time)
    t0: float = 0.0
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())


async def _client(
    http: httpx.AsyncClient,
    job_ids: list[str],
    start: int,
    deadline: float,
    rec: Record,
    status_only: bool,
) -> None:
    i = start
    while time.perf_counter() < deadline:
        if status_only or i % 2 == 0:
            route, path = ROUTE_ONE, f"/jobs/{job_ids[(i // 2) % len(job_ids)]}"
        else:
            route, path = ROUTE_LIST, "/jobs"
        t0 = time.perf_counter()
        try:
            resp = await http.get(path)
            ok = resp.status_code == 200
        except httpx.HTTPError:
            ok = False
        dt = time.perf_counter() - t0
        if ok:
            rec.latencies[route].append(dt)
            rec.started.append((dt, t0 - rec.t0))
        else:
            rec.errors[route] += 1
        i += 1


def _busy(a: Any, b: Any, seconds: float) -> float:
    return 100 * ((b.user - a.user) + (b.system - a.system)) / seconds


class _Sum:
    """CPU times summed over several processes (user, system), like psutil's."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        times = [p.cpu_times() for p in procs]
        self.user = sum(t.user for t in times)
        self.system = sum(t.system for t in times)


def _machine_busy(a: Any, b: Any, seconds: float) -> float:
    return 100 * ((sum(b) - b.idle - b.iowait) - (sum(a) - a.idle - a.iowait)) / seconds


async def measure(
    url: str,
    job_ids: list[str],
    clients: int,
    seconds: float,
    api: list[psutil.Process],
    status_only: bool = False,
) -> tuple[Record, dict[str, float]]:
    """Run one phase; also return the CPU % used by the API, this client and the whole machine.

    100% is one core; "machine" counts every process, so machine - API - client is what the
    rest (the idle worker, the supervisor, anything else running here) took meanwhile.
    The clients are built before the clock starts: building an httpx client costs tens of
    milliseconds of CPU (an SSL context), which would otherwise stall the first requests.
    """
    https = [httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) for _ in range(clients)]
    me = psutil.Process()
    try:
        api0, me0, all0 = _Sum(api), me.cpu_times(), psutil.cpu_times()
        rec = Record(t0=time.perf_counter())
        deadline = rec.t0 + seconds
        tasks = [_client(h, job_ids, c, deadline, rec, status_only) for c, h in enumerate(https)]
        # Requests in flight at the deadline finish; none takes longer than its timeout.
        await asyncio.wait_for(asyncio.gather(*tasks), seconds + REQUEST_TIMEOUT_S + 30)
        rec.elapsed = time.perf_counter() - rec.t0
        api1, me1, all1 = _Sum(api), me.cpu_times(), psutil.cpu_times()
    finally:
        for h in https:
            await h.aclose()
    cpu = {
        "api": _busy(api0, api1, rec.elapsed),
        "client": _busy(me0, me1, rec.elapsed),
        "machine": _machine_busy(all0, all1, rec.elapsed),
    }
    return rec, cpu


def report(name: str, clients: int, rec: Record, cpu: dict[str, float]) -> dict[str, float]:
    """Print one phase; return its overall p50/p99 (ms), requests/s and API CPU ms/request."""
    rps = rec.count / rec.elapsed
    errors = sum(rec.errors.values())
    # CPU % of one core over the phase -> CPU seconds -> milliseconds per request answered.
    api_ms = 10 * cpu["api"] * rec.elapsed / max(rec.count, 1)
    print(
        f"\n{name}: {clients} client(s), {rec.elapsed:.1f} s, {rec.count} requests, "
        f"{rps:.1f} req/s, {errors} error(s); CPU: API {cpu['api']:.0f}%, client "
        f"{cpu['client']:.0f}%, whole machine {cpu['machine']:.0f}% of "
        f"{100 * (os.cpu_count() or 1)}% (100% = one core); API CPU {api_ms:.2f} ms/request"
    )
    print(f"  {'route':<16} {'n':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    every: list[float] = []
    for route in (ROUTE_ONE, ROUTE_LIST):
        lat = rec.latencies.get(route, [])
        every += lat
        print(
            f"  {route:<16} {len(lat):>7} {1000 * percentile(lat, 50):>8.1f} "
            f"{1000 * percentile(lat, 99):>8.1f} {1000 * max(lat, default=float('nan')):>8.1f}"
        )
    p50, p99 = 1000 * percentile(every, 50), 1000 * percentile(every, 99)
    print(
        f"  {'overall':<16} {len(every):>7} {p50:>8.1f} {p99:>8.1f} "
        f"{1000 * max(every, default=float('nan')):>8.1f}"
    )
    slowest = sorted(rec.started, reverse=True)[:5]
    print(
        "  slowest: " + ", ".join(f"{1000 * dt:.0f} ms (sent at {at:.2f} s)" for dt, at in slowest)
    )
    return {"p50": p50, "p99": p99, "rps": rps, "api_ms": api_ms}


@dataclass
class Target:
    """One server measured: its label, URL, API processes and the job ids its clients poll."""

    label: str
    url: str
    api: list[psutil.Process]
    job_ids: list[str]
    results: list[tuple[dict[str, float], dict[str, float]]] = field(default_factory=list)


def _prepare(served: Served, teacher: Path, jobs: int, root: Path) -> list[str]:
    """Submit `jobs` small jobs to `served` and wait until all have succeeded."""
    with AKDClient(served.url) as client:
        t0 = time.perf_counter()
        ids = [client.submit(small_spec(teacher), base_dir=root)["id"] for _ in range(jobs)]
        for job_id in ids:
            state = client.wait(job_id, timeout_s=JOB_TIMEOUT_S)["state"]
            if state != "succeeded":
                raise SystemExit(f"job {job_id} {state}:\n{served.tail()}")
        listed = len(client.jobs()["items"])
    print(
        f"{served.root}: {jobs} small jobs finished in {time.perf_counter() - t0:.1f} s "
        f"(GET /jobs lists {listed}); its worker is idle from here on"
    )
    return ids


def _floor_server(stack: ExitStack, target: Target, log: Path) -> Target:
    """A bare uvicorn (akd serve's HTTP options) serving bench/_floor_app.py, same body size."""
    size = len(httpx.get(f"{target.url}/jobs/{target.job_ids[0]}").content)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKD_")}
    env.update(PYTHONPATH=str(ROOT), AKD_BENCH_FLOOR_BYTES=str(size))
    cmd = [sys.executable, "-m", "uvicorn", "_floor_app:app", "--app-dir", str(ROOT / "bench"),
           "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
           *SERVE_HTTP_OPTIONS]  # fmt: skip
    out = stack.enter_context(log.open("ab"))
    proc = stack.enter_context(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out))
    stack.callback(proc.terminate)
    url = f"http://127.0.0.1:{port}"
    if not wait_ready(url, lambda: proc.poll() is None, 60.0):
        raise SystemExit(f"the floor app did not start; see {log}")
    print(
        f"floor: a trivial ASGI app answering {size}-byte bodies under uvicorn {' '.join(cmd[3:])}"
    )
    return Target("floor (uvicorn alone)", url, [psutil.Process(proc.pid)], target.job_ids)


def _summary(clients: int, targets: list[Target]) -> None:
    print(
        f"\nmedians over {len(targets[0].results)} round(s), API CPU ms/request, 1 / {clients} clients"
    )
    for t in targets:
        med = {
            key: [statistics.median(r[i][key] for r in t.results) for i in (0, 1)]
            for key in ("rps", "p50", "p99", "api_ms")
        }
        print(
            f"summary {t.label}: 1 client {med['rps'][0]:.0f} req/s p50 {med['p50'][0]:.1f} ms "
            f"p99 {med['p99'][0]:.1f} ms; {clients} clients {med['rps'][1]:.0f} req/s p50 "
            f"{med['p50'][1]:.1f} ms p99 {med['p99'][1]:.1f} ms; API CPU "
            f"{med['api_ms'][0]:.2f} / {med['api_ms'][1]:.2f} ms per request"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--baseline-seconds", type=float, default=5.0)
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--status-only", action="store_true", help="only GET /jobs/{id}")
    ap.add_argument("--api-workers", type=int, default=None, help="akd serve --api-workers N")
    ap.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        help="also serve this checkout (e.g. a git worktree of the before commit)",
    )
    ap.add_argument("--floor", action="store_true", help="also measure uvicorn alone")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times")
    args = ap.parse_args()  # fmt: skip
    serve_args = [] if args.api_workers is None else ["--api-workers", str(args.api_workers)]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="akd-bench-load-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        teacher = make_teacher(root / "teacher.onnx")
        targets = []
        for i, checkout in enumerate([ROOT, *args.compare]):
            served = Served(root / f"data{i}", root / f"serve{i}.log", args=serve_args,
                            root=checkout.resolve())  # fmt: skip
            stack.enter_context(served)
            api = served.api_processes()
            label = f"{checkout} (this script's)" if i == 0 else str(checkout)
            targets.append(
                Target(label, served.url, api, _prepare(served, teacher, args.jobs, root))
            )
            print(f"{label}: API processes {', '.join(str(p.pid) for p in api)}")
        if args.floor:
            targets.append(_floor_server(stack, targets[0], root / "floor.log"))
        phases = (("baseline", 1, args.baseline_seconds), ("load", args.clients, args.seconds))
        for r in range(args.rounds):
            for t in targets:
                t.results.append(
                    tuple(  # type: ignore[arg-type]
                        report(
                            f"round {r + 1}, {t.label}, {name}",
                            n,
                            *asyncio.run(
                                measure(t.url, t.job_ids, n, secs, t.api, args.status_only)
                            ),
                        )
                        for name, n, secs in phases
                    )
                )
    _summary(args.clients, targets)


if __name__ == "__main__":
    main()
