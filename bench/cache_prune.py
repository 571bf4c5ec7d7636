"""What keeping the job cache under its cap costs, on a cache of about 1,000 entries.

Builds a cache folder (in a temp dir) of --entries entries of --kib KiB each, one third each
of the three kinds (logit files, decoded-data folders of three files, token files), every
one read once through its cache so that it has a lease file, with last-use times one
second apart. Then times, best and median of --repeats:
  scan       list_entries: what the pass after every job costs when nothing is over the cap
  in-use     the `akd cache ls` probe (a non-blocking exclusive flock) of every entry
  evict      prune() down to half the bytes: per evicted entry (rename + rmtree + lease file)
The cache is rebuilt before each evict run. Prints one line per figure.

    .venv/bin/python bench/cache_prune.py [--entries 1000] [--kib 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from akd_core.cache import LogitCache
from akd_core.cache_entries import list_entries
from akd_core.cache_lease import Lease, lease_path
from akd_core.cache_prune import Pruned, prune
from akd_core.data.store import DataStore


def build(root: Path, entries: int, kib: int) -> None:
    """`entries` entries of about `kib` KiB, leased once each, used one second apart."""
    logits, store = LogitCache(root), DataStore(root / "data")
    (root / "tokens").mkdir(parents=True, exist_ok=True)
    now = time.time()
    for i in range(entries):
        key = f"{i:032x}"
        kind = i % 3
        if kind == 0:
            logits.put(key, {"val": np.zeros((kib * 256, 1), np.float32)})
            path = logits.path(key)
            logits.get(key)  # one read: its lease file
        elif kind == 1:
            x = np.zeros((kib, 1024), np.uint8)
            path = store.put(key, {"main": (x, np.zeros(kib))}, {"classes": []}).path
        else:
            path = root / "tokens" / f"{key}.npz"
            np.savez(path, train=np.zeros(kib * 1024, np.uint8))
            Lease.shared(path).release()
        t = now - (entries - i)
        for p in (path, lease_path(path)):
            os.utime(p, (t, t))
    gc.collect()


def timed(func: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call: CPU time is the figure a loaded machine does not skew."""
    t0, c0 = time.perf_counter(), time.process_time()
    func()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    scans: list[tuple[float, float]] = []
    probes: list[tuple[float, float]] = []
    per_evict: list[tuple[float, float]] = []
    evicted = 0
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="akd-cache-bench-") as tmp:
            root = Path(tmp)
            build(root, args.entries, args.kib)
            found = list_entries(root)
            assert len(found) == args.entries, len(found)
            total = sum(e.size for e in found)
            scans.append(timed(lambda root=root: list_entries(root)))
            probes.append(timed(lambda found=found: [e.in_use() for e in found]))
            results: list[Pruned] = []
            wall, cpu = timed(lambda: results.append(prune(root, total // 2)))  # noqa: B023
            evicted = len(results[0].evicted)
            per_evict.append((wall / max(evicted, 1), cpu / max(evicted, 1)))
            assert results[0].total_after <= total // 2
        print(f"run {r + 1}/{args.repeats} done", flush=True)

    def line(name: str, xs: list[tuple[float, float]], what: str) -> str:
        wall, cpu = [x[0] * 1e3 for x in xs], [x[1] * 1e3 for x in xs]
        return (f"{name:<7} wall best {min(wall):8.2f} median {statistics.median(wall):8.2f}  "
                f"CPU best {min(cpu):8.2f} median {statistics.median(cpu):8.2f}  {what}")  # fmt: skip

    print(f"cache of {args.entries} entries x {args.kib} KiB (1/3 each: logits, data, tokens)")
    print(line("scan", scans, "ms to list every entry (the pass after a job, nothing over)"))
    print(line("in-use", probes, "ms to probe every entry's lease (akd cache ls)"))
    print(line("evict", per_evict, f"ms per evicted entry ({evicted} evicted to half)"))


if __name__ == "__main__":
    main()
