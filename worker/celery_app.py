"""The Celery application: a broker that only wakes workers; the database holds the truth.

Worker process model (robustness notes):
- Prefork with concurrency 1 is the default (`celery -A worker.celery_app worker -c 1`).
  The task runs in a forked child, so a crash, an OOM kill or a CUDA fault takes down the
  child only; the parent notices (WorkerLostError) and, with reject_on_worker_lost, the
  message goes back to the queue. The claim's attempt counter stops a job that kills its
  worker every time from looping forever.
- The parent must never import torch: a prefork parent that ran a multi-threaded torch op
  before forking leaves the child hung on its first torch op. This module and
  worker/tasks.py import no torch; akd_core.pipeline is imported inside the task body.
- Cancellation is a database flag that the training loop polls, never revoke(terminate):
  killing a child mid-write could leave half-written artifacts and a lost GPU context.
- No result backend: job outcomes are written to the job row by the task itself.
- One card per child: each pool child sets CUDA_VISIBLE_DEVICES to its own GPU (by its pool
  index, from AKD_GPUS or the cards the driver shows) as it starts, before any torch import,
  so `--concurrency N` on an N-GPU host runs one job per card (akd_service/gpus.py).
- A share of the cores per child: each pool child sets its torch thread count
  (AKD_TORCH_THREADS; 'auto' = usable CPUs // concurrency) the same way, before torch loads,
  so N children do not each run a thread per core (akd_service/threads.py).
"""

from __future__ import annotations

import os
from typing import Any

from billiard.process import current_process
from celery import Celery
from celery._state import get_current_app
from celery.signals import worker_init, worker_process_init

from akd_core.torch_threads import set_default_threads
from akd_service.config import Settings
from akd_service.gpus import pin_child, worker_gpus
from akd_service.threads import threads_per_child
from worker.tasks import register_tasks

# The task is registered under akd_service.queue.TASK_NAME (worker/tasks.py), the name the API sends.
# Celery's default queue: akd_service/queue.py sends without routing options, so both ends agree.
QUEUE = "celery"
# Longer than the longest job: an unacknowledged message is handed to another worker only
# after this long, so a slow job is never run twice by redelivery. Worker deaths are caught
# much sooner by the reaper, which watches heartbeats instead (worker/reaper.py).
VISIBILITY_TIMEOUT_S = 24 * 3600


class WorkerApp(Celery):
    """The Celery app of the worker, holding the service settings it was built from."""

    def __init__(self, settings: Settings) -> None:
        # Unset broker_url means the embedded server of `akd serve` (its socket under
        # data_dir); the supervisor also passes the exact URL to its children as AKD_BROKER_URL.
        super().__init__("akd", broker=settings.effective_broker_url)
        self.settings = settings
        # Celery's WorkController, once `celery worker` built it (it knows the pool size).
        self.controller: Any = None

    def torch_threads(self) -> int | None:
        """Intra-op torch threads of one pool child of this worker (AKD_TORCH_THREADS); None
        outside a `celery worker` (an eager call in a test or a shell leaves torch alone)."""
        size = getattr(self.controller, "concurrency", None)  # an int once 'auto' is resolved
        if not isinstance(size, int):
            return None
        return threads_per_child(self.settings.torch_threads, size)


def make_celery(settings: Settings) -> WorkerApp:
    """Build the Celery app, with its task, from the service settings."""
    app = WorkerApp(settings)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        # The job itself heartbeats; Celery's own events and gossip add nothing here.
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        # A fresh child every few jobs returns memory a long training run fragmented.
        worker_max_tasks_per_child=20,
    )
    # Before register_tasks: its child hook starts importing torch, which must see the count.
    _share_cores_among_children(app)
    register_tasks(app)
    _pin_children_to_gpus(app)
    return app


def _share_cores_among_children(app: WorkerApp) -> None:
    """Connect the hooks that give each pool child of `app` its torch thread count."""

    def remember_controller(sender: Any = None, **_: object) -> None:
        # In the parent; its pool size is read in the child, after fork, once 'auto' resolved.
        if getattr(sender, "app", None) is app:
            app.controller = sender

    def size(**_: object) -> None:
        # Torch is not loaded yet in this child: OpenMP reads the count when it loads, and the
        # processes a job spawns (DDP ranks) inherit it. run_job sets it again exactly.
        n = app.torch_threads() if get_current_app() is app else None
        if n is not None:
            set_default_threads(n)

    worker_init.connect(remember_controller, weak=False)
    worker_process_init.connect(size, weak=False)


def _pin_children_to_gpus(app: WorkerApp) -> None:
    """Connect the hook that gives each pool child of `app` its own GPU."""
    # The card list is read once, in the parent, without torch (nvidia-smi or /proc).
    gpus = worker_gpus(app.settings.gpus)

    def pin(**_: object) -> None:
        # The signal is process-wide: act only for the app this child was started with.
        if get_current_app() is not app:
            return
        index = getattr(current_process(), "index", None)
        if isinstance(index, int):
            pin_child(index, gpus, os.environ, app.settings.devices_per_job)

    worker_process_init.connect(pin, weak=False)


# The entry point of `celery -A worker.celery_app worker`: the settings come from the AKD_*
# environment here, and only here; everything below is handed them.
celery_app = make_celery(Settings())
