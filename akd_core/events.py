"""Progress events and the caller-supplied hooks (event sink, cancellation check)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from akd_core.errors import JobCancelled

# Where a run is, in order (the job row's `phase`): loading the data and teacher, caching the
# teacher's logits, training an arm (annealing then finetuning, or training for the kd and
# student arms), exporting, evaluating.
Stage = Literal[
    "loading", "caching_teacher", "annealing", "finetuning", "training", "exporting", "evaluating"
]
STAGES: tuple[Stage, ...] = get_args(Stage)


@dataclass(frozen=True)
class ProgressEvent:
    """One thing that happened in a run; `to_dict()` is what the API stores and streams."""

    kind: str  # "phase" (a stage starts), "epoch" (an epoch ended), "log", "done"
    stage: str  # one of STAGES (checked on creation)
    arm: str | None = None  # annealing | kd | student
    message: str = ""
    progress: float = 0.0  # 0..1 over the whole run
    phase: int | None = None  # 1 or 2 within an arm
    epoch: int | None = None
    epochs: int | None = None
    T: int | None = None
    phi: float | None = None
    train_loss: float | None = None
    val_accuracy: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; stages: {', '.join(STAGES)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


EventSink = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


@dataclass
class Hooks:
    """The caller's event sink and cancellation check, with safe defaults."""

    on_event: EventSink | None = None
    should_cancel: CancelCheck | None = None

    def emit(self, event: ProgressEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def check_cancel(self) -> None:
        """Raise JobCancelled when the caller asked to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise JobCancelled("the job was cancelled")
