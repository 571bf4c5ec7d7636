"""Wake a worker for a job: send the job id to the broker by task name (no worker imports)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from akd_service.config import get_settings

# The one definition of the task's name: worker/tasks.py registers the task under it.
TASK_NAME = "akd.run_job"


@lru_cache(maxsize=4)
def _producer(broker_url: str) -> Any:
    # Celery is imported lazily: building the app (and its tests) needs no broker at all.
    from celery import Celery

    producer = Celery("akd-api", broker=broker_url)
    producer.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    return producer


def enqueue(job_id: str) -> None:
    """Send `akd.run_job(job_id)`; the database row stays the truth, the message only wakes."""
    _producer(get_settings().effective_broker_url).send_task(TASK_NAME, args=[job_id])
