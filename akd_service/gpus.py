"""Which GPU each worker process trains on: one card per prefork child, chosen before torch loads.

Nothing here imports torch: it runs in the Celery parent (which must never load torch, see
worker/celery_app.py) and in each freshly forked child before the task imports akd_core.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import MutableMapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

# One directory per GPU the driver exposes (the NVIDIA container runtime hides the others).
NVIDIA_PROC_GPUS = Path("/proc/driver/nvidia/gpus")
VISIBLE = "CUDA_VISIBLE_DEVICES"


def parse_gpu_list(text: str) -> list[str]:
    """`"0,1, 3"` -> `["0", "1", "3"]` (indexes or GPU UUIDs, as CUDA_VISIBLE_DEVICES takes)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def detected_gpu_count(proc_dir: Path | None = None) -> int:
    """How many NVIDIA GPUs this process could see, asked of the driver (never of torch)."""
    proc_dir = proc_dir or NVIDIA_PROC_GPUS
    if proc_dir.is_dir():
        return sum(1 for _ in proc_dir.iterdir())
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return 0  # no driver tools: a CPU host
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def worker_gpus(configured: str | None, env: MutableMapping[str, str] | None = None) -> list[str]:
    """The cards this worker's children share out: AKD_GPUS, else the inherited
    CUDA_VISIBLE_DEVICES, else every GPU the driver shows; empty on a CPU host."""
    env = os.environ if env is None else env
    if configured:
        return parse_gpu_list(configured)
    if env.get(VISIBLE, "").strip():
        return parse_gpu_list(env[VISIBLE])
    return [str(i) for i in range(detected_gpu_count())]


def gpu_for_child(index: int, gpus: Sequence[str], per_child: int = 1) -> str | None:
    """The cards of pool child `index` (0-based), `per_child` of them (AKD_DEVICES_PER_JOB),
    comma-separated; children beyond the list share round-robin.

    Celery's prefork pool gives a replacement child the index of the one it replaces, so a
    recycled child keeps its cards and no card is left without a worker.
    """
    if not gpus:
        return None
    start, n = index * per_child, min(per_child, len(gpus))
    return ",".join(gpus[(start + i) % len(gpus)] for i in range(n))


def pin_child(
    index: int, gpus: Sequence[str], env: MutableMapping[str, str], per_child: int = 1
) -> str | None:
    """Make pool child `index` see only its card(s) (before torch loads); returns them."""
    card = gpu_for_child(index, gpus, per_child)
    if card is None:
        return None
    if (index + 1) * per_child > len(gpus):
        log.warning(
            "worker child %d shares GPU %s: more children (--concurrency) than GPUs (%s); "
            "set AKD_GPUS or lower the concurrency for one job per card",
            index, card, ",".join(gpus),
        )  # fmt: skip
    env[VISIBLE] = card
    return card
