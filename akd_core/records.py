"""The trainer's state that crosses a boundary: epoch records (report history) and resume state.

A checkpoint file stays what it always was, a flat dict of plain containers and tensors that
torch.load(weights_only=True) reads: the dataclasses convert at that boundary, and a file
whose fields differ from what this version writes is refused, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from akd_core.checkpoint import load_checkpoint, refused
from akd_core.compile_forward import ForwardChoice

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one arm; report.json's `history` holds these fields under these names."""

    phase: int  # 1 or 2
    epoch: int  # within its phase, from 1
    T: int | None  # annealing temperature; None outside Phase 1 of the annealing arm
    phi: float | None  # Phi(T), None where T is
    train_loss: float  # sample-weighted mean over the epoch's steps
    val_accuracy: float
    lr: float  # after the epoch's last step: what the next epoch starts at
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The record as report.json and the checkpoint store it."""
        return _fields_of(self)


@dataclass(frozen=True)
class BestEpoch:
    """The best epoch of the current phase on the validation split, with its weights."""

    val_accuracy: float
    epoch: int
    phase: int
    state: Tensors  # CPU copy of the student's weights after that epoch


@dataclass
class LoopState:
    """Where an arm's loop stands: what a checkpoint carries besides weights, optimizer, RNG."""

    phase_idx: int = 0
    epoch: int = 0  # epochs done in the current phase
    history: list[EpochRecord] = field(default_factory=list)
    best: BestEpoch | None = None
    train_seconds: float = 0.0


@dataclass(frozen=True)
class ResumeState:
    """One checkpoint of an arm: its loop state and all an exact resume needs."""

    loop: LoopState
    arm: str
    done: bool
    run_key: str  # identifies spec + data + teacher; a resume must match it
    model: Tensors
    optimizer: dict[str, Any]  # {} once the arm is done
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor]
    scaler: dict[str, Any]  # fp16 loss scale

    def to_dict(self) -> dict[str, Any]:
        """The flat dict the checkpoint file holds (the same keys as before the dataclasses)."""
        best = self.loop.best
        flat = {**_fields_of(self.loop), **_fields_of(self)}
        del flat["loop"]
        flat["history"] = [r.to_dict() for r in self.loop.history]
        flat["best"] = None if best is None else _fields_of(best)
        return flat

    @classmethod
    def from_dict(cls, flat: dict[str, Any]) -> ResumeState:
        """Inverse of to_dict; raises FieldMismatch naming a missing or unknown field."""
        _check_fields(flat, _FLAT_FIELDS, "it")
        history = flat["history"]
        if not isinstance(history, list):
            raise FieldMismatch(f"its history is a {type(history).__name__}, not a list")
        records = [
            EpochRecord(**_checked(r, EpochRecord, f"its history[{i}]"))
            for i, r in enumerate(history)
        ]
        best = flat["best"]
        loop = LoopState(
            phase_idx=flat["phase_idx"],
            epoch=flat["epoch"],
            history=records,
            best=None if best is None else BestEpoch(**_checked(best, BestEpoch, "its best")),
            train_seconds=flat["train_seconds"],
        )
        return cls(loop=loop, **{k: flat[k] for k in _names(cls) - {"loop"}})


@dataclass
class ArmResult:
    """What one arm produced: its best-on-validation weights and its per-epoch history."""

    arm: str
    best_state: dict[str, torch.Tensor]
    best_val_accuracy: float
    best_phase: int
    best_epoch: int
    history: list[EpochRecord] = field(default_factory=list)
    train_seconds: float = 0.0
    forward: ForwardChoice | None = None  # compiled or eager; None when resumed as done


class FieldMismatch(ValueError):
    """A checkpoint's fields are not the ones this version writes."""


def load_resume_state(path: Path) -> ResumeState | None:
    """The checkpoint at `path` (None when there is none); a foreign or older layout is refused."""
    flat = load_checkpoint(path)
    if flat is None:
        return None
    try:
        return ResumeState.from_dict(flat)
    except FieldMismatch as exc:
        raise refused(path, str(exc)) from exc


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


_FLAT_FIELDS = _names(LoopState) | (_names(ResumeState) - {"loop"})


def _fields_of(obj: Any) -> dict[str, Any]:
    # Not dataclasses.asdict: that deep-copies every tensor of the weights on each save.
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _checked(value: object, cls: type, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldMismatch(f"{where} is a {type(value).__name__}, not a record")
    _check_fields(value, _names(cls), where)
    return value


def _check_fields(value: dict[str, Any], expected: set[str], where: str) -> None:
    if missing := sorted(expected - value.keys()):
        raise FieldMismatch(f"{where} lacks {_listed(missing)}")
    if unknown := sorted(map(str, value.keys() - expected)):
        raise FieldMismatch(f"{where} has {_listed(unknown)} that this version does not write")


def _listed(names: list[str]) -> str:
    return ("the field " if len(names) == 1 else "the fields ") + ", ".join(map(repr, names))
