"""A real Queue for tests: it records the job ids it is sent, and can fail like a broker."""

from __future__ import annotations


class RecordingQueue:
    """Keeps the job ids it is sent; the next `failures` sends raise as an unreachable broker."""

    def __init__(self, sent: list[str] | None = None, failures: int = 0) -> None:
        self.sent: list[str] = sent if sent is not None else []
        self.failures = failures

    def enqueue(self, job_id: str) -> None:
        """Record `job_id`, or raise ConnectionError while failures are left."""
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.sent.append(job_id)
