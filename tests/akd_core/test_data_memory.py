"""Peak memory of a streamed job does not grow with the number of samples (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# One student-only epoch on the data cache, in a fresh process: its peak RSS is the job's.
CHILD = """
import json, sys
from pathlib import Path
from akd_core.limits import Limits
from akd_core.pipeline import run_job
from akd_core.spec import parse_spec
data, teacher, out, budget = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
spec = parse_spec({
    "teacher": {"source": f"file:{teacher}", "format": "safetensors", "arch": "cnn-tiny"},
    "student": {"arch": "mlp", "options": {"hidden": [16]}},
    "dataset": {"source": f"file:{data}"},
    "method": "student", "compare": [], "min_teacher_accuracy": 0,
    "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
    "optimizer": {"batch_size": 256}, "export": {"int8": False},
})
report = run_job(spec, out, limits=Limits(resident_data_bytes=budget))
# VmHWM: this process's own peak. (ru_maxrss would also count the parent's peak RSS: Linux
# folds the pre-exec memory of a forked or vforked child into it.)
status = open("/proc/self/status").read().split("VmHWM:")[1]
peak_kb = int(status.split()[0])
print(json.dumps({"peak_kb": peak_kb, "placement": report["dataset"]["placement"]}))
"""
SHAPE = (32, 32, 3)  # CIFAR-shaped images, stored NHWC uint8 as users often save them


def _npz(path: Path, n: int) -> Path:
    rng = np.random.default_rng(n)
    np.savez(path, x=rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8), y=np.arange(n) % 10)
    return path


def _teacher(path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    from akd_core.models import build_model

    torch.manual_seed(0)
    net = build_model("cnn-tiny", (3, 32, 32), 10, {})
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def _peak(tmp: Path, n: int, teacher: Path, budget: int) -> dict:
    data = _npz(tmp / f"x{n}.npz", n)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(teacher), str(tmp / f"out{n}"), str(budget)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_rss_of_a_streamed_job_stays_flat_from_2000_to_20000_samples(tmp_path):
    teacher = _teacher(tmp_path / "teacher.safetensors")
    small = _peak(tmp_path, 2_000, teacher, budget=0)
    large = _peak(tmp_path, 20_000, teacher, budget=0)
    assert small["placement"] == large["placement"] == "streamed"
    float32_bytes = 20_000 * int(np.prod(SHAPE)) * 4  # 246 MB: what the old loader held 2.7x
    grew = (large["peak_kb"] - small["peak_kb"]) * 1024
    assert grew < float32_bytes / 8, (
        f"peak RSS grew by {grew / 1e6:.0f} MB from 2,000 to 20,000 samples "
        f"({small['peak_kb'] / 1e3:.0f} -> {large['peak_kb'] / 1e3:.0f} MB)"
    )
