"""Job states (CONTRACT in DESIGN.md), defined once for the database, API, worker and client.

Plain strings typed as Literals: rows, JSON bodies and comparisons all see the same values.
Nothing here imports SQLAlchemy, so the client can compare states without the server's stack.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

JobState = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
JOB_STATES: tuple[JobState, ...] = get_args(JobState)

QUEUED: Final = "queued"
RUNNING: Final = "running"
CANCELLING: Final = "cancelling"  # cancel asked of a running job; the worker stops it
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"

FINAL_STATES: frozenset[JobState] = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE_STATES: tuple[JobState, ...] = (RUNNING, CANCELLING)  # a worker holds the lease
