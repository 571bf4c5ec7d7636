"""Atomic training checkpoints; the project's only torch.load, always weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from akd_core.fileio import atomic_write

CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(out_dir: Path, arm: str) -> Path:
    """Where the resumable state of one arm lives."""
    return out_dir / CHECKPOINT_DIR / f"{arm}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` atomically: a crash mid-write leaves the previous checkpoint intact."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """Read a checkpoint written by save_checkpoint (tensors and plain containers only)."""
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """The RNG states a resumed run needs to continue bit-exactly."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():  # the current device only: a resuming host may see fewer GPUs
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    """Inverse of rng_state."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
