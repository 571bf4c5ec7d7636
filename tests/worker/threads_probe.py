"""Run as a script in a fresh interpreter (torch not loaded, as in `celery worker`'s parent):
start a 2-child pool of the worker app and print the torch thread count each child sees
when torch loads and inside the job task.

Usage: python tests/worker/threads_probe.py DATA_DIR AKD_TORCH_THREADS CONCURRENCY
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import billiard
from billiard.process import current_process
from celery.concurrency.prefork import process_initializer
from celery.signals import worker_init


class Controller:
    """The part of Celery's WorkController the hook reads: its app and pool size."""

    def __init__(self, app: object, concurrency: int) -> None:
        self.app, self.concurrency = app, concurrency


def report_threads(out_dir: str, app: object) -> None:
    """Pool initializer: Celery's own child setup, then load torch and record its thread count."""
    from worker.tasks import run_job

    process_initializer(app, "threads-test@host")
    import torch

    at_load = torch.get_num_threads()
    run_job(app, "not-a-job-id", None)  # the task body, up to its refusal of the id
    seen = {"at_load": at_load, "in_task": torch.get_num_threads()}
    Path(out_dir, f"child-{current_process().index}").write_text(json.dumps(seen))


def main(data_dir: str, setting: str, concurrency: str) -> None:
    from akd_service.config import Settings
    from worker.celery_app import make_celery

    app = make_celery(Settings(data_dir=data_dir, broker_url="memory://", torch_threads=setting))
    assert "torch" not in sys.modules  # the parent must fork before torch loads
    worker_init.send(sender=Controller(app, int(concurrency)))  # what `celery worker` does
    out = Path(data_dir, "seen")
    out.mkdir()
    pool = billiard.Pool(2, initializer=report_threads, initargs=(str(out), app))
    try:
        deadline = time.monotonic() + 120  # two children importing torch on a loaded machine
        while len(list(out.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        pool.terminate()
    print(json.dumps({p.name: json.loads(p.read_text()) for p in out.iterdir()}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
