"""Run one job end to end under a lease: claim, heartbeat, run akd_core, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from akd_core.cache_prune import prune_after_job
from akd_core.errors import AKDError, JobCancelled, SpecError
from akd_core.events import ProgressEvent
from akd_core.report_schema import Report
from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.session import session_scope
from akd_service.db.states import CANCELLED, FAILED, SUCCEEDED
from akd_service.db.uploads import owned_upload_path
from worker.lease import Lease
from worker.scrub import scrub_paths

log = logging.getLogger(__name__)

RunJob = Callable[..., dict[str, Any]]
# Files in the job's folder that are never offered for download.
_PRIVATE_DIRS = {"checkpoints"}


def make_worker_id(node: str | None = None) -> str:
    """A lease owner name unique to this process and run: node:pid:random."""
    return f"{node or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def upload_resolver(settings: Settings, owner: str) -> Callable[[str], Path]:
    """Map "upload:<id>" to the stored file, only for uploads of the job's owner."""

    def resolve(source: str) -> Path:
        scheme, _, upload_id = source.partition(":")
        if scheme != "upload":
            raise SpecError(f"{source!r} is not an upload source; use upload:<id>")
        with session_scope(settings) as session:
            path = owned_upload_path(session, upload_id, owner, settings.uploads)
        if path is None:
            raise SpecError(f"upload {upload_id!r} does not exist (or belongs to another key)")
        if not path.is_file():
            raise SpecError(f"the file of upload {upload_id!r} is missing from the server")
        return path

    return resolve


def artifact_names(out_dir: Path) -> list[str]:
    """The downloadable files of a finished job: top-level, complete, not resume state."""
    if not out_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in out_dir.iterdir()
        if p.is_file()
        and p.name not in _PRIVATE_DIRS
        and not p.name.startswith(".")  # atomic-write temporaries
        and not p.name.endswith((".tmp", ".part"))
    )


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The job row's metrics: accuracies, sizes and ONNX parity from report.json.

    The report is read through its published model, so a report that breaks the CONTRACT
    fails here (pydantic's ValidationError names the field) rather than storing holes.
    """
    parsed = Report.model_validate(report)
    return {
        "teacher_accuracy": parsed.teacher.accuracy,
        "student_accuracy": parsed.student.accuracy,
        "params": parsed.params.model_dump(),
        "onnx_parity_max_abs_diff": parsed.onnx.parity_max_abs_diff,
        "onnx_argmax_agreement": parsed.onnx.argmax_agreement,
        "baselines": {name: arm.accuracy for name, arm in parsed.baselines.items()},
    }


class EventRecorder:
    """The run's on_event: store each event and mirror phase/progress on the job row."""

    def __init__(self, settings: Settings, lease: Lease, attempt: int) -> None:
        self.settings = settings
        self.lease = lease
        self.attempt = attempt

    def __call__(self, event: ProgressEvent) -> None:
        # The attempt number on every event lets anyone check that runs never interleave.
        self.lease.progressed(event.stage)  # feeds the stage watchdog
        data = event.to_dict() | {"attempt": self.attempt}
        if isinstance(data.get("message"), str):
            data["message"] = scrub_paths(data["message"], self.settings)
        try:
            with session_scope(self.settings) as session:
                held = jobs_db.set_progress(
                    session,
                    self.lease.job_id,
                    self.lease.worker_id,
                    phase=event.stage,
                    progress=event.progress,
                )
                if held:
                    jobs_db.add_event(session, self.lease.job_id, event.kind, data)
        except Exception:  # progress is best effort: never fail a training run over it
            log.warning("could not record an event of job %s", self.lease.job_id, exc_info=True)
            return
        if held:
            self.lease.refreshed()
        else:
            self.lease.mark_lost("the job row no longer names this worker")


def _default_run_job() -> RunJob:
    # Imported here, in the task process: the prefork parent must never load torch.
    from akd_core.pipeline import run_job

    return run_job


def execute_job(
    job_id: str,
    worker_id: str | None = None,
    *,
    settings: Settings,
    run_job: RunJob | None = None,
    on_hang: Callable[[], None] | None = None,
) -> str | None:
    """Run the job if this worker can claim it; return its final state (None if not ours).

    on_hang is called (from the heartbeat thread) once a hung stage has been recorded.
    """
    worker_id = worker_id or make_worker_id()
    with session_scope(settings) as session:
        job = jobs_db.claim_job(session, job_id, worker_id, settings.stale_after_s)
        if job is None:
            # A duplicate delivery, a job another worker holds, a finished one, or one that
            # ran out of attempts (claim_job then records the failure itself).
            log.info("job %s not claimed by %s; dropping this delivery", job_id, worker_id)
            return None
        attempt, owner, spec_data = job.attempt, job.owner, dict(job.spec)
        jobs_db.add_event(
            session,
            job_id,
            "log",
            {"message": f"attempt {attempt} started", "worker": worker_id, "attempt": attempt},
        )
    log.info("job %s: attempt %d claimed by %s", job_id, attempt, worker_id)

    lease = Lease(settings, job_id, worker_id, on_hang=on_hang).start()
    state, reason, metrics, artifacts = FAILED, None, None, None
    out_dir = settings.artifacts / job_id
    try:
        from akd_core.spec import parse_spec

        spec = parse_spec(spec_data)
        run = run_job or _default_run_job()
        report = run(
            spec,
            out_dir,
            resolve=upload_resolver(settings, owner),
            on_event=EventRecorder(settings, lease, attempt),
            should_cancel=lease.should_stop,
            resume=attempt > 1,
            cache_dir=settings.cache,
            device=None if settings.device == "auto" else settings.device,
            devices=settings.devices_per_job,
            archive_limits=settings.archive_limits(),  # the same caps the upload passed
        )
        state, metrics, artifacts = SUCCEEDED, summarize(report), artifact_names(out_dir)
    except JobCancelled:
        state = CANCELLED
    except AKDError as exc:
        reason = scrub_paths(str(exc), settings)
    except Exception as exc:
        log.error("job %s: internal error\n%s", job_id, traceback.format_exc())
        # The log keeps the full message; the row, which users read, gets no server paths.
        reason = scrub_paths(f"internal error: {type(exc).__name__}: {exc}", settings)
    finally:
        lease.stop()
    # The cache folder back under AKD_CACHE_MAX_GB, least recently used entries first.
    evicted = prune_after_job(settings.cache, settings.cache_max_bytes, None)

    if lease.lost:
        # Another worker owns the job now (or will): it records the outcome, not us.
        log.warning("job %s: attempt %d stopped after losing its lease", job_id, attempt)
        return None
    with session_scope(settings) as session:
        for line in evicted:  # visible in the job's events, not only the worker's log
            jobs_db.add_event(session, job_id, "log", {"message": line, "attempt": attempt})
        recorded = jobs_db.finish_job(
            session, job_id, worker_id, state, reason, metrics=metrics, artifacts=artifacts
        )
    if recorded is None:
        log.warning("job %s: outcome %s not recorded, the lease was lost", job_id, state)
        return None
    # `recorded` may differ from `state`: a cancel that arrived before the end wins.
    log.info("job %s: %s%s", job_id, recorded, f" ({reason})" if reason else "")
    return recorded
