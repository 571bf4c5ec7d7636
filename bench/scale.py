"""Scale benchmark: one epoch on a generated image folder of 200,000 PNGs against 10,000.

    nice -n 19 .venv/bin/python bench/scale.py generate            # once; files are reused
    nice -n 19 .venv/bin/python bench/scale.py run --sizes 10000 200000

`generate` writes 64x64 RGB PNGs, 10 classes, under /tmp/akd-scale/images-200000 (in
parallel, one process per core; files already there are kept) and hard-links the first
images of every class into smaller folders (images-10000). `run` distils each size for one
kd epoch (cnn-tiny teacher, cached logits; MLP student) in a fresh process, streamed from
the data cache (--resident-bytes sets Limits.resident_data_bytes; default 0: always stream;
--prefetch sets the batches decoded ahead on a thread, default 1, 0: none),
and prints peak RSS (the child's VmHWM) and images/s as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/akd-scale")
CLASSES = 10
SIZE = 64
CHUNK = 2000  # images per generating task


def folder(n: int) -> Path:
    """The image folder holding n images."""
    return ROOT / f"images-{n}"


def _pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """A learnable 64x64 RGB image: a class-specific stripe angle and colour, plus noise."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    angle = np.pi * label / CLASSES + rng.normal(0, 0.05)
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / 3.0 + rng.uniform(0, 6.3))
    colour = np.array([(label * 37) % 255, (label * 91) % 255, (label * 53) % 255], np.float32)
    img = 128 + 60 * wave[..., None] * (colour / 255.0 + 0.3) + rng.normal(0, 12, (SIZE, SIZE, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_chunk(args: tuple[int, int]) -> int:
    from PIL import Image

    start, stop = args
    written = 0
    for i in range(start, stop):
        label, k = i % CLASSES, i // CLASSES
        path = folder(TOTAL) / f"class{label}" / f"img{k:06d}.png"
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        Image.fromarray(_pattern(label, rng)).save(path, compress_level=1)
        written += 1
    return written


TOTAL = 200_000


def generate(total: int, subsets: list[int]) -> None:
    """Write `total` PNGs (skipping those present), then hard-linked subsets."""
    for c in range(CLASSES):
        (folder(total) / f"class{c}").mkdir(parents=True, exist_ok=True)
    t0, done = time.perf_counter(), 0
    chunks = [(s, min(s + CHUNK, total)) for s in range(0, total, CHUNK)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for n in pool.map(_write_chunk, chunks):
            done += n
    print(json.dumps({"generated": done, "total": total, "seconds": time.perf_counter() - t0}))
    for n in subsets:
        for c in range(CLASSES):
            dst = folder(n) / f"class{c}"
            dst.mkdir(parents=True, exist_ok=True)
            for k in range(n // CLASSES):
                name = f"img{k:06d}.png"
                if not (dst / name).exists():
                    os.link(folder(total) / f"class{c}" / name, dst / name)


CHILD = """
import json, sys, time
from pathlib import Path
from akd_core.limits import Limits
from akd_core.pipeline import run_job
from akd_core.spec import parse_spec
from akd_core import prefetch
data, teacher, out, cache, budget, ahead = sys.argv[1:7]
prefetch.AHEAD = int(ahead)  # streamed batches decoded ahead on a thread; 0: in the step
spec = parse_spec({
    "teacher": {"source": f"file:{teacher}", "format": "safetensors", "arch": "cnn-tiny"},
    "student": {"arch": "mlp", "options": {"hidden": [64]}},
    "dataset": {"source": f"file:{data}", "format": "imagefolder"},
    "method": "kd", "compare": [], "min_teacher_accuracy": 0,
    "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
    "optimizer": {"batch_size": 256}, "export": {"int8": False},
})
events, marks = [], {}
def on_event(e):
    marks.setdefault(e.stage, time.perf_counter())
    if e.kind == "epoch":
        events.append(e.samples_per_s)
t0 = time.perf_counter()
report = run_job(spec, Path(out), cache_dir=Path(cache), on_event=on_event,
                 limits=Limits(resident_data_bytes=int(budget)))
# VmHWM, the child's own peak (ru_maxrss would fold in the parent's: see test_data_memory.py)
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({
    "peak_rss_mb": round(peak / 1024),
    "train_images_per_s": round(events[-1], 1),
    "decode_s": round(marks["caching_teacher"] - t0, 1),
    "teacher_cache_s": round(report["timings"]["teacher_cache_s"], 1),
    "total_s": round(time.perf_counter() - t0, 1),
    "placement": report["dataset"]["placement"],
    "prefetch": prefetch.AHEAD,
    "sizes": report["dataset"]["sizes"],
    "student_accuracy": report["student"]["accuracy"],
}))
"""


def _teacher(path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    from akd_core.models import build_model

    torch.manual_seed(0)
    net = build_model("cnn-tiny", (3, SIZE, SIZE), CLASSES, {})
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def run(sizes: list[int], fresh_cache: bool, resident_bytes: int, ahead: int) -> None:
    """One kd epoch per size in a fresh process; one JSON line of figures per size."""
    teacher = _teacher(ROOT / "teacher.safetensors")
    for n in sizes:
        cache = ROOT / f"cache-{n}"
        if fresh_cache:
            subprocess.run(["rm", "-rf", str(cache)], check=True)
        out = ROOT / f"out-{n}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(folder(n)), str(teacher), str(out), str(cache),
             str(resident_bytes), str(ahead)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print(json.dumps({"images": n, "error": done.stderr[-2000:]}))
            continue
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps({"images": n, **figures}), flush=True)


def main() -> None:
    """Command line: generate | run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--subsets", type=int, nargs="*", default=[10_000])
    r = sub.add_parser("run")
    r.add_argument("--sizes", type=int, nargs="+", default=[10_000, TOTAL])
    r.add_argument("--fresh-cache", action="store_true", help="decode the images again")
    r.add_argument(
        "--resident-bytes",
        type=int,
        default=0,
        help="Limits.resident_data_bytes (0: always stream; 2**40: always resident)",
    )
    r.add_argument(
        "--prefetch",
        type=int,
        default=1,
        help="streamed batches decoded ahead on a thread (akd_core.prefetch.AHEAD; 0: none)",
    )
    args = p.parse_args()
    if args.cmd == "generate":
        generate(TOTAL, args.subsets)
    else:
        run(args.sizes, args.fresh_cache, args.resident_bytes, args.prefetch)


if __name__ == "__main__":
    main()
