"""API CPU per status read, in-process: GET /jobs/{id} straight into the ASGI app, no server.

Builds the app on a temp SQLite data dir with one job (a validated spec, metrics, three
artifact names), then calls the app (a hand-built ASGI scope, no HTTP parsing, no socket)
for --requests requests after a warm-up, and prints the process CPU (all threads, so the
thread pool counts) per request. With --keys the app requires API keys and every request
sends one. With --profile it runs the requests again under cProfile (the event loop's thread
only) and prints the top functions. The figure excludes uvicorn's own work (HTTP parsing and
socket I/O), which bench/api_load.py includes.

    .venv/bin/python bench/read_profile.py [--requests 3000] [--keys] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from akd_core.spec import parse_spec
from akd_service.config import Settings
from akd_service.db import jobs as job_store
from akd_service.db.migrate import upgrade
from akd_service.db.session import session_scope
from akd_service.keys import create_key
from app.main import create_app

SPEC = {
    "teacher": {"source": "upload:0123456789abcdef", "format": "onnx"},
    "student": {"arch": "mlp"},
    "dataset": {"source": "builtin:digits"},
    "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
}


def _setup(data: Path, keys: bool) -> tuple[Any, str, list[tuple[bytes, bytes]]]:
    settings = Settings(data_dir=data, require_keys=keys)
    settings.ensure_dirs()
    upgrade(settings)
    # What httpx sends (the polling clients of bench/api_load.py), so header handling counts.
    headers = [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*"),
               (b"accept-encoding", b"gzip, deflate"), (b"connection", b"keep-alive"),
               (b"user-agent", b"python-httpx/0.28.1")]  # fmt: skip
    owner = "local"
    with session_scope(settings) as s:
        if keys:
            owner, token = create_key(s, "bench")
            headers.append((b"authorization", f"Bearer {token}".encode()))
        job = job_store.create_job(s, owner, parse_spec(SPEC).model_dump(mode="json"), 3)
        job.metrics = {f"metric_{i}": 0.5 + i for i in range(12)}
        job.artifacts = ["student.onnx", "report.json", "report.md"]
        job_id = job.id
    return create_app(settings), job_id, headers


async def _requests(app: Any, job_id: str, headers: list[tuple[bytes, bytes]], n: int) -> None:
    path = f"/jobs/{job_id}"
    for _ in range(n):
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers, "state": {},
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"GET {path} answered {sent[0]['status']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--keys", action="store_true", help="require API keys")
    ap.add_argument("--profile", action="store_true", help="then print cProfile's top 30")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="akd-read-profile-") as tmp:
        app, job_id, headers = _setup(Path(tmp), args.keys)

        async def run() -> None:
            await _requests(app, job_id, headers, 200)  # warm-up: caches, pool, first compile
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await _requests(app, job_id, headers, args.requests)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            print(
                f"{args.requests} x GET /jobs/{{id}} (keys {'on' if args.keys else 'off'}): "
                f"{1000 * cpu / args.requests:.3f} ms CPU, {1000 * wall / args.requests:.3f} ms "
                "wall per request"
            )
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                await _requests(app, job_id, headers, args.requests)
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(30)

        asyncio.run(run())


if __name__ == "__main__":
    main()
