"""Atomic training checkpoints; the project's only torch.load, always weights_only=True."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from akd_core.errors import TrainingError
from akd_core.fileio import atomic_write

CHECKPOINT_DIR = "checkpoints"
# What torch.load raises for a file it refuses (objects beyond tensors and plain containers)
# or cannot read (torn, empty, not a torch file).
_UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError)


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
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as exc:
        # torch's own message suggests weights_only=False: never an option for a file we
        # did not write, so say what to do instead.
        why = (
            "it holds objects other than tensors and plain containers"
            if isinstance(exc, pickle.UnpicklingError)
            else "it is damaged or not a torch checkpoint"
        )
        raise refused(path, why) from exc
    if not isinstance(state, dict):
        raise refused(path, f"it holds a {type(state).__name__}, not a checkpoint")
    return state


def refused(path: Path, why: str) -> TrainingError:
    """The error for a checkpoint file that is not loaded, saying why and what to do."""
    return TrainingError(
        # Relative name only: failure reasons reach API clients, server paths must not.
        f"{path.parent.name}/{path.name} is not a checkpoint this service wrote ({why}); it was "
        "not loaded. Delete it to start the arm afresh, or run the job in a new output folder",
        field="resume",
    )


def rng_state(generator: torch.Generator, device: torch.device | None = None) -> dict[str, Any]:
    """The RNG states a resumed run on `device` needs to continue bit-exactly."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    # The job's own GPU only (a pinned worker sees one card; another may hold another job),
    # and never on CPU: asking torch.cuda would initialise CUDA for nothing.
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(
    state: dict[str, Any], generator: torch.Generator, device: torch.device | None = None
) -> None:
    """Inverse of rng_state; a GPU checkpoint resumed on CPU skips its CUDA state."""
    torch.set_rng_state(state["torch"])
    saved = state["generator"]
    if saved.numel() == generator.get_state().numel():
        generator.set_state(saved)
    else:  # written by a generator on another kind of device: its stream cannot go on here
        generator.manual_seed(int(saved.to(torch.int64).sum()))
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
