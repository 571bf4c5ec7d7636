"""Wake a worker for a job: the Queue protocol, and its Celery producer (no worker imports)."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from akd_service.config import Settings

# The one definition of the task's name: worker/tasks.py registers the task under it.
TASK_NAME = "akd.run_job"


class Queue(Protocol):
    """Where the API (and the reaper) send a job id; the database row stays the truth."""

    def enqueue(self, job_id: str) -> None:
        """Wake a worker for `job_id`; raises if the message could not be handed over."""


class CeleryQueue:
    """The production queue: sends `akd.run_job(job_id)` to the broker by task name."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self._producer: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryQueue:
        """The queue on the broker the settings name (the embedded one when unset)."""
        return cls(settings.effective_broker_url)

    def _app(self) -> Any:
        # Celery is imported on first use: building the app (and its tests) needs no broker.
        with self._lock:
            if self._producer is None:
                from celery import Celery

                producer = Celery("akd-api", broker=self.broker_url)
                producer.conf.update(
                    task_serializer="json",
                    accept_content=["json"],
                    broker_connection_retry_on_startup=True,
                )
                self._producer = producer
            return self._producer

    def enqueue(self, job_id: str) -> None:
        """Send `akd.run_job(job_id)`: the message carries the job id and nothing else."""
        self._app().send_task(TASK_NAME, args=[job_id])
