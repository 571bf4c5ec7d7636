"""How many torch threads each worker job process uses (AKD_TORCH_THREADS), decided without torch.

Like the GPU pinning (akd_service/gpus.py), this runs in each freshly forked pool child before
torch loads: N children each using every core would oversubscribe the CPU N times over.
"""

from __future__ import annotations

import os

AUTO = "auto"
FIELD = "AKD_TORCH_THREADS"


def parse_torch_threads(value: object) -> str:
    """`"auto"` or a positive whole number (as text); anything else is refused, naming the field."""
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{FIELD} must be 'auto' or a whole number of threads >= 1, not {value!r}")
    return str(int(text))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_child(setting: str, concurrency: int, cpus: int | None = None) -> int:
    """Intra-op threads of one of `concurrency` pool children: the setting, or for 'auto'
    an equal share of the usable CPUs (at least one)."""
    if parse_torch_threads(setting) != AUTO:
        return int(setting)
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, concurrency))
