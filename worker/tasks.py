"""The Celery task: it receives a job id only and hands it to the runner."""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from celery.signals import worker_init, worker_process_init

from akd_service.config import get_settings
from akd_service.queue import TASK_NAME
from worker.celery_app import celery_app
from worker.runner import execute_job, make_worker_id

log = logging.getLogger(__name__)
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
EXIT_HUNG = 70  # EX_SOFTWARE: this pool process ended itself over a hung stage


def _end_hung_process() -> None:
    """End this pool process: a call hung in C code cannot be interrupted from Python.

    The lease already gave the job up (it is stale, or failed when out of attempts), so
    nothing is lost: Celery starts a fresh pool process, and the message, rejected because
    its worker was lost, comes back and resumes the job as its next attempt.
    """
    logging.shutdown()
    os._exit(EXIT_HUNG)


@worker_init.connect
def _migrate_on_start(**_: Any) -> None:
    """Bring the schema up to date once, in the parent, before any job runs."""
    from akd_service.db.migrate import upgrade
    from akd_service.db.session import get_engine

    settings = get_settings()
    settings.ensure_dirs()
    upgrade(settings)
    # Pooled connections must not cross the fork into the task processes.
    get_engine(settings).dispose()


@worker_process_init.connect
def _fresh_pool_in_child(**_: Any) -> None:
    """Drop inherited database connections; start loading torch and the core in the child."""
    from akd_service.db.session import get_engine

    get_engine(get_settings()).dispose(close=False)
    # Importing torch + akd_core takes seconds; doing it now, after the fork and in the
    # background (Celery gives process init only a few seconds), takes it off the first job.
    threading.Thread(target=_preload_core, name="akd-preload", daemon=True).start()


def _preload_core() -> None:
    try:
        import akd_core.pipeline  # noqa: F401
    except Exception:  # the task's own import will raise it where it can be reported
        log.exception("preloading akd_core failed")


@celery_app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self: Any, job_id: str) -> str | None:
    """Claim and run one job; the outcome lives on the job row, not in a result backend."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        log.error("dropping a message with a malformed job id: %r", job_id)
        return None
    worker_id = make_worker_id(self.request.hostname)
    return execute_job(job_id, worker_id, on_hang=_end_hung_process)
