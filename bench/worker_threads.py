"""Two demo-sized jobs on `akd serve --workers 2` under a given AKD_TORCH_THREADS.

Submits the demo's seed-0 and seed-1 jobs (runs/demo/teachers/, made by `make demo`) at once,
times until both succeed, and prints each job's report.json `runtime` and summed train_s:

    nice -n 19 .venv/bin/python bench/worker_threads.py auto /tmp/wt-auto
    nice -n 19 .venv/bin/python bench/worker_threads.py 2 /tmp/wt-2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from akd_tools.client import AKDClient
from akd_tools.demo import stop_server
from akd_tools.demo_task import job_spec
from akd_tools.serve import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
TEACHERS = ROOT / "runs" / "demo" / "teachers"


def main(setting: str, data: Path) -> None:
    """Start the server with AKD_TORCH_THREADS=setting, run both jobs, print the figures."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "akd_tools.cli", "serve", "--data-dir", str(data),
         "--port", str(port), "--workers", "2"],
        start_new_session=True, env={**os.environ, "AKD_TORCH_THREADS": setting}, cwd=ROOT,
    )  # fmt: skip
    try:
        if not wait_ready(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, 120):
            raise RuntimeError("akd serve did not start")
        client = AKDClient(f"http://127.0.0.1:{port}")
        t0 = time.perf_counter()
        ids = [
            client.submit(job_spec(f"file:{TEACHERS / f'teacher-seed{s}.onnx'}", s))["id"]
            for s in (0, 1)
        ]
        for job_id in ids:
            job = client.wait(job_id, timeout_s=900)
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['state']}: {job.get('failure_reason')}")
        wall = time.perf_counter() - t0
        figures = []
        for job_id in ids:
            report = json.loads(client.download(job_id, "report.json", data / job_id).read_text())
            figures.append(
                (report["runtime"], round(sum(report["timings"]["train_s"].values()), 1))
            )
        print(f"AKD_TORCH_THREADS={setting}: both jobs done in {wall:.1f} s; "
              f"per job (runtime, train_s): {figures}")  # fmt: skip
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
