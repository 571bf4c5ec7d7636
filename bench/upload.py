"""Time and server memory of one large streamed upload (POST /uploads).

Starts `akd serve` in a temp data dir (AKD_MAX_UPLOAD_BYTES set just above --mb) and sends a
multipart body built by a generator: one 1 MiB seeded random block repeated --mb times, so
neither side ever needs the whole file in memory. A thread samples the RSS of the API process
(the uvicorn child of `akd serve`) and of this client process every 20 ms. A 1 MiB upload
goes first so that first-request allocations (thread pool, DB connection) are not counted.
Printed: time, MiB/s, the API's RSS before, at peak and after, and the peak increase (the
issue's target: under 32 MB), plus the client's own peak increase. The server's sha256 and
size are checked against the client's.

    .venv/bin/python bench/upload.py [--mb 200]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from _service import MIB, Served, machine

SAMPLE_S = 0.02
BLOCK = b"AKD-BENCH\n" + random.Random(0).randbytes(MIB - 10)


class RssSampler:
    """Samples the RSS of some processes every SAMPLE_S seconds from a thread."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            for name, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.samples[name].append((now, proc.memory_info().rss))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def between(self, name: str, t0: float, t1: float) -> list[int]:
        return [rss for t, rss in self.samples[name] if t0 <= t < t1]


def multipart(mb: int, boundary: str, digest: hashlib._Hash) -> tuple[Iterator[bytes], int]:
    """A generator of the multipart body of one `mb` MiB file, and the body's length."""
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="bench.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(mb):
            digest.update(BLOCK)
            yield BLOCK
        yield tail

    return body(), len(head) + mb * MIB + len(tail)


def upload(url: str, mb: int) -> tuple[float, dict[str, object], str]:
    """POST one `mb` MiB file; returns (seconds, response JSON, the client's sha256)."""
    boundary = uuid.uuid4().hex
    digest = hashlib.sha256()
    body, length = multipart(mb, boundary, digest)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(length),
    }
    t0 = time.perf_counter()
    resp = httpx.post(f"{url}/uploads", content=body, headers=headers, timeout=600)
    seconds = time.perf_counter() - t0
    if resp.status_code != 201:
        raise SystemExit(f"upload refused: HTTP {resp.status_code} {resp.text[:500]}")
    return seconds, resp.json(), digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="upload size in MiB")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    cap = (args.mb + 1) * MIB
    with tempfile.TemporaryDirectory(prefix="akd-bench-upload-") as tmp:
        root = Path(tmp)
        env = {"AKD_MAX_UPLOAD_BYTES": str(cap)}
        with Served(root / "data", root / "serve.log", env) as served:
            api = served.api_process()
            upload(served.url, 1)  # warm-up: first-request allocations are not the upload's
            time.sleep(1.0)
            with RssSampler({"api": api, "client": psutil.Process()}) as rss:
                time.sleep(1.0)
                t0 = time.perf_counter()
                seconds, got, sha = upload(served.url, args.mb)
                t1 = time.perf_counter()
                time.sleep(1.0)
            before = {k: statistics.median(rss.between(k, 0, t0)) for k in ("api", "client")}
            peak = {k: max(rss.between(k, t0, t1)) for k in ("api", "client")}
            after = statistics.median(rss.between("api", t1, float("inf")))
            samples = len(rss.between("api", t0, t1))
    if got.get("size") != args.mb * MIB or got.get("sha256") != sha:
        raise SystemExit(f"server stored something else: {got} (client sha256 {sha})")
    print(f"uploaded {args.mb} MiB in {seconds:.2f} s = {args.mb / seconds:.1f} MiB/s "
          f"(size and sha256 match; AKD_MAX_UPLOAD_BYTES={cap})")  # fmt: skip
    print(
        f"API RSS: before {before['api'] / MIB:.1f} MiB, peak {peak['api'] / MIB:.1f} MiB, "
        f"after {after / MIB:.1f} MiB; peak increase {(peak['api'] - before['api']) / MIB:.1f} "
        f"MiB ({samples} samples at {SAMPLE_S * 1000:.0f} ms; target < 32 MB)"
    )
    print(
        f"client RSS: before {before['client'] / MIB:.1f} MiB, peak increase "
        f"{(peak['client'] - before['client']) / MIB:.1f} MiB"
    )


if __name__ == "__main__":
    main()
