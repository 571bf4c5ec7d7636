"""Response bodies of the REST API (the body of POST /jobs is the CONTRACT job spec itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from akd_service.db.states import JobState


class UploadPublic(BaseModel):
    """A stored upload; reference it in a spec as `upload:<id>`."""

    id: str
    sha256: str
    size: int
    kind: str = Field(description="What the content was sniffed to be (onnx, npz, zip, ...).")
    filename: str
    reused: bool = Field(
        default=False,
        description="True when you had uploaded identical bytes (same sha256) before: this is "
        "that upload, and nothing new was stored.",
    )


class JobLinks(BaseModel):
    """Where to go next for a job."""

    self: str
    events: str
    cancel: str
    artifacts: dict[str, str] = Field(default_factory=dict, description="name -> download URL")


class ParamCounts(BaseModel):
    """Parameter counts of the two models (the teacher's where its format tells)."""

    model_config = ConfigDict(extra="allow")

    teacher: int | None = None
    student: int | None = None


class JobMetrics(BaseModel):
    """The result of a succeeded job, from its report.json (accuracies on the test split)."""

    model_config = ConfigDict(extra="allow")  # older rows and newer workers may say more

    teacher_accuracy: float | None = None
    student_accuracy: float | None = None
    params: ParamCounts | None = None
    onnx_parity_max_abs_diff: float | None = Field(
        default=None, description="Largest |logit difference| between PyTorch and ONNX."
    )
    onnx_argmax_agreement: float | None = None
    baselines: dict[str, float | None] = Field(
        default_factory=dict, description="Accuracy of each compared method (student, kd)."
    )


class JobPublic(BaseModel):
    """A job as its owner sees it."""

    id: str
    state: JobState
    phase: str | None = None
    progress: float = 0.0
    attempt: int = 0
    max_attempts: int
    cancel_requested: bool = False
    failure_reason: str | None = None
    metrics: JobMetrics | None = None
    artifacts: list[str] = Field(default_factory=list)
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    links: JobLinks


class JobsPage(BaseModel):
    """One page of jobs, newest first; pass `next` as `cursor` for the following page."""

    items: list[JobPublic]
    next: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None


class Health(BaseModel):
    """Liveness and database reachability."""

    status: str
    database: str
    version: str
