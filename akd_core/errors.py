"""The error hierarchy of akd_core; the API maps each class to a problem+json status."""

from __future__ import annotations


class AKDError(Exception):
    """Base class: a message a person can act on, and optionally the spec field at fault."""

    title = "Distillation error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class SpecError(AKDError):
    """The job spec is invalid or names something that does not exist."""

    title = "Invalid job spec"


class TeacherLoadError(AKDError):
    """The teacher file cannot be loaded safely, or does not fit the dataset."""

    title = "Teacher cannot be used"


class DatasetError(AKDError):
    """The dataset file is malformed or unreadable."""

    title = "Dataset cannot be used"


class TrainingError(AKDError):
    """Training cannot continue (e.g. non-finite loss, teacher at chance level)."""

    title = "Training failed"


class JobCancelled(AKDError):
    """The caller's cancellation check asked the run to stop."""

    title = "Job cancelled"


def short_message(exc: BaseException, limit: int = 300) -> str:
    """The exception's text on one line, at most `limit` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
