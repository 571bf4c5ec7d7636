"""What the service adds to a small job: API wall time minus the core's own run time.

One small job (digits, a CNN teacher trained here and saved as ONNX, MLP student, tau_max 2,
2 + 1 epochs) run two ways, interleaved, --repeats times (default 3):
  api   through `akd serve` (temp data dir, free loopback port), timed by the client from
        the start of submit (teacher upload + POST /jobs) until the job has succeeded and
        every artifact is downloaded: AKDClient.submit, .wait (SSE), .download_all
  core  akd_core.pipeline.run_job called in this process with the same spec and teacher file
Both run with a COLD teacher-logit cache: the core gets a fresh cache dir each time and the
server's cache dir is emptied before each API job (report.json's teacher_cache_hit is printed
to show it). One unmeasured warm-up of each comes first, so neither side's figure includes
first-time imports (torch in the worker's pool child, onnxruntime, ...); its times are printed.
The API time is also split with the job row's timestamps: submit, queued (created ->
started), run in the worker (started -> finished), and notice + download (finished -> end).

    .venv/bin/python bench/service_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _service import Served, machine, make_teacher, small_spec

from akd_core.pipeline import run_job
from akd_core.spec import parse_spec
from akd_tools.client import AKDClient

JOB_TIMEOUT_S = 300.0


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def run_api(client: AKDClient, spec: dict[str, Any], root: Path, out: Path) -> dict[str, Any]:
    """One job through the service; wall time as the client sees it, and its parts."""
    start_wall = datetime.now(UTC).timestamp()
    t0 = time.perf_counter()
    job = client.submit(spec, base_dir=root)
    t_submitted = time.perf_counter()
    final = client.wait(job["id"], timeout_s=JOB_TIMEOUT_S)
    if final["state"] != "succeeded":
        raise SystemExit(f"job {job['id']} {final['state']}: {final.get('failure_reason')}")
    t_seen = time.perf_counter()
    client.download_all(job["id"], out)
    total = time.perf_counter() - t0
    created, started = _ts(final["created_at"]), _ts(final["started_at"])
    finished = _ts(final["finished_at"])
    report = json.loads((out / "report.json").read_text())
    return {
        "total": total,
        "submit": t_submitted - t0,
        "queued": started - created,
        "worker": finished - started,
        "notice": (start_wall + (t_seen - t0)) - finished,
        "download": total - (t_seen - t0),
        "cache_hit": report["timings"]["teacher_cache_hit"],
    }


def run_core(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The same job through akd_core in this process, with a fresh cache dir."""
    t0 = time.perf_counter()
    report = run_job(parse_spec(spec), out, cache_dir=out / "cache")
    return {"total": time.perf_counter() - t0, "cache_hit": report["timings"]["teacher_cache_hit"]}


def _empty(folder: Path) -> None:
    for p in folder.glob("*"):
        if p.is_file():
            p.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="akd-bench-overhead-") as tmp:
        root = Path(tmp)
        spec = small_spec(make_teacher(root / "teacher.onnx"))
        print(f"job: {json.dumps({k: v for k, v in spec.items() if k != 'teacher'})}")
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        with Served(root / "data", root / "serve.log") as served, AKDClient(served.url) as client:
            server_cache = root / "data" / "cache"
            for r in range(args.repeats + 1):  # r == 0 is the warm-up
                _empty(server_cache)
                api = run_api(client, spec, root, root / f"api{r}")
                core = run_core(spec, root / f"core{r}")
                label = "warm-up" if r == 0 else f"run {r}"
                print(
                    f"{label:>8}: api {api['total']:6.2f} s  core {core['total']:6.2f} s  "
                    f"diff {api['total'] - core['total']:+5.2f} s   [api = submit "
                    f"{api['submit']:.2f} + queued {api['queued']:.2f} + worker "
                    f"{api['worker']:.2f} + notice {api['notice']:.2f} + download "
                    f"{api['download']:.2f}; cache hit api/core: {api['cache_hit']}/"
                    f"{core['cache_hit']}]",
                    flush=True,
                )
                if r > 0:
                    rows.append((api, core))
    api_t = [a["total"] for a, _ in rows]
    core_t = [c["total"] for _, c in rows]
    diffs = [a - c for a, c in zip(api_t, core_t, strict=True)]
    print(
        f"median of {len(rows)}: api {statistics.median(api_t):.2f} s, core "
        f"{statistics.median(core_t):.2f} s, difference {statistics.median(diffs):+.2f} s "
        "(median of the per-run differences; target < 2 s)"
    )
    for part in ("submit", "queued", "worker", "notice", "download"):
        print(f"  api {part:<8} median {statistics.median(a[part] for a, _ in rows):.2f} s")


if __name__ == "__main__":
    main()
