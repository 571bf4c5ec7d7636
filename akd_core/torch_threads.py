"""The intra-op thread count of torch in this process and in the processes it starts."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# Read by OpenMP when torch loads: a process that has not imported torch yet (a fresh pool
# child) and the processes it spawns later (the DDP ranks) start with this many threads.
THREADS_ENV = "OMP_NUM_THREADS"


def set_default_threads(n: int, env: MutableMapping[str, str] | None = None) -> None:
    """Make torch, when it loads here or in a process started from here, use `n` threads."""
    (os.environ if env is None else env)[THREADS_ENV] = str(n)


def use_torch_threads(n: int) -> None:
    """Set torch's intra-op threads to `n` now, and for the processes started from here."""
    import torch  # here, not at import: the worker's parent must never load torch

    set_default_threads(n)
    torch.set_num_threads(n)


def runtime_facts() -> dict[str, int]:
    """The thread counts a run's timings depend on, for report.json's `runtime`."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
    }
