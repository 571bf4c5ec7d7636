"""Plain-text tables of the `akd` command line (`akd jobs`, `akd keys list`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from akd_service.db.states import FINAL_STATES


def job_row(job: dict[str, Any], now: datetime) -> tuple[str, ...]:
    """One `akd jobs` line: the result's accuracy once succeeded, the phase while running."""
    state = str(job.get("state", ""))
    progress = f"{float(job.get('progress') or 0):.0%}"
    if job.get("phase") and state not in FINAL_STATES:
        progress += f" {job['phase']}"
    accuracy = (job.get("metrics") or {}).get("student_accuracy")
    shown = f"{accuracy:.4f}" if isinstance(accuracy, int | float) else "-"
    return (str(job.get("id", "")), state, progress, shown, age_text(job.get("created_at"), now))


def age_text(created_at: object, now: datetime) -> str:
    """How long ago an ISO timestamp was, as a person says it: 45s, 12m, 3h, 2d ('-' if unknown)."""
    try:
        then = datetime.fromisoformat(str(created_at))
    except ValueError:
        return "-"
    seconds = max(
        0, int((now - (then if then.tzinfo else then.replace(tzinfo=UTC))).total_seconds())
    )
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Print rows as left-aligned columns, the first row being the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
