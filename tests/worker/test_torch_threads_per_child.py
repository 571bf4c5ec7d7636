"""Each Celery pool child runs torch on its share of the cores (AKD_TORCH_THREADS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from akd_service.threads import usable_cpus

PROBE = Path(__file__).with_name("threads_probe.py")
ROOT = Path(__file__).resolve().parents[2]


def _threads_seen_by_two_children(tmp_path: Path, setting: str, concurrency: int) -> dict:
    # A fresh interpreter: this test process already loaded torch (tests/conftest.py), and
    # children forked from it would inherit its thread count, hiding what the hook does.
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path), setting, str(concurrency)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_real_pool_children_each_get_a_half_share_of_the_cores(tmp_path):
    share = max(1, usable_cpus() // 2)  # 1 on the 2-core machine, where torch defaults to 2
    seen = _threads_seen_by_two_children(tmp_path, "auto", concurrency=2)
    both = {"at_load": share, "in_task": share}
    assert seen == {"child-0": both, "child-1": both}


@pytest.mark.slow
def test_a_fixed_count_is_given_to_every_child(tmp_path):
    # More than the cores: torch caps OMP_NUM_THREADS at load, so the task sets it exactly.
    seen = _threads_seen_by_two_children(tmp_path, "3", concurrency=2)
    assert {child: s["in_task"] for child, s in seen.items()} == {"child-0": 3, "child-1": 3}
