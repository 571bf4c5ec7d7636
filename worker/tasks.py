"""The Celery task: it receives a job id only and hands it to the runner."""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.signals import worker_init, worker_process_init

from akd_core.torch_threads import use_torch_threads
from akd_service.queue import TASK_NAME
from worker.runner import execute_job, make_worker_id

if TYPE_CHECKING:
    from worker.celery_app import WorkerApp

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


def _preload_core() -> None:
    try:
        import akd_core.pipeline  # noqa: F401
    except Exception:  # the task's own import will raise it where it can be reported
        log.exception("preloading akd_core failed")


def run_job(app: WorkerApp, job_id: str, hostname: str | None) -> str | None:
    """Claim and run one job; the outcome lives on the job row, not in a result backend."""
    # Torch caps OMP_NUM_THREADS (set as the child started) at the core count; this is exact.
    threads = app.torch_threads()
    if threads is not None:
        use_torch_threads(threads)
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        log.error("dropping a message with a malformed job id: %r", job_id)
        return None
    worker_id = make_worker_id(hostname)
    return execute_job(job_id, worker_id, settings=app.settings, on_hang=_end_hung_process)


def register_tasks(app: WorkerApp) -> Task[[str], str | None]:
    """Register the job task on `app`, and its process hooks, all using `app.settings`."""
    settings = app.settings

    def migrate_on_start(sender: Any = None, **_: Any) -> None:
        """Bring the schema up to date once, in the parent, before any job runs."""
        if getattr(sender, "app", app) is not app:
            return  # another app's worker (only in a process that built several)
        from akd_service.db.migrate import upgrade
        from akd_service.db.session import get_engine

        settings.ensure_dirs()
        upgrade(settings)
        # Pooled connections must not cross the fork into the task processes.
        get_engine(settings).dispose()

    def fresh_pool_in_child(**_: Any) -> None:
        """Drop inherited database connections; start loading torch and the core in the child."""
        from akd_service.db.session import get_engine

        get_engine(settings).dispose(close=False)
        # Importing torch + akd_core takes seconds; doing it now, after the fork and in the
        # background (Celery gives process init only a few seconds), takes it off the first job.
        threading.Thread(target=_preload_core, name="akd-preload", daemon=True).start()

    # weak=False: the hooks are closures over this app, kept alive by the signal itself.
    worker_init.connect(migrate_on_start, weak=False)
    worker_process_init.connect(fresh_pool_in_child, weak=False)

    # shared=False: the task belongs to this app only (another app has its own settings).
    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, shared=False)
    def run_job_task(self: Task[[str], str | None], job_id: str) -> str | None:
        return run_job(app, job_id, self.request.hostname)

    return run_job_task
