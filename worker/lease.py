"""The lease a worker holds on a running job: a heartbeat thread, a stage watchdog, and
the run's stop check."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.session import session_scope

log = logging.getLogger(__name__)

# The run's stop check reads the cancel flag from the database at most this often: the
# training loop calls it every step, and steps can be milliseconds apart.
CANCEL_POLL_S = 0.5


class Lease:
    """Keeps a job's heartbeat fresh and tells the run when it must stop.

    The run must stop (without writing a final state) when the lease is lost: another
    worker took the job over, or this worker could not heartbeat for so long that another
    one may be about to. Stopping a little before the takeover threshold is what keeps two
    runs of one job from ever overlapping.

    The heartbeat proves the process is alive, not that the run advances; so it is also a
    watchdog. Every event and every stop check of the run counts as progress; a stage with
    none for stage_timeout_s (a teacher load or an export that hangs) is hung: the lease
    gives the attempt up (the job is resumed by another attempt, or fails once out of
    attempts) with a failure_reason naming the stage, and stops beating.
    """

    def __init__(
        self,
        settings: Settings,
        job_id: str,
        worker_id: str,
        clock: Callable[[], float] = time.monotonic,
        on_hang: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_hang = on_hang  # called after a hung stage was recorded (see tasks.py)
        self.job_id = job_id
        self.worker_id = worker_id
        self._clock = clock
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._last_ok = clock()
        self._cancel_checked_at = float("-inf")
        self._last_progress = clock()
        self.stage = "starting"  # the run's current stage, named by its events
        self._cancel_requested = False
        self._thread = threading.Thread(
            target=self._beat_loop, name=f"heartbeat-{job_id[:8]}", daemon=True
        )
        # Fence: give up the lease one heartbeat before anyone else may take it over.
        self._fence_s = max(settings.stale_after_s - settings.heartbeat_s, settings.heartbeat_s)

    # -- heartbeat ------------------------------------------------------------------------
    def start(self) -> Lease:
        """Start heartbeating in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop heartbeating (the job's final state is written by the caller)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.settings.heartbeat_s + 5)

    def beat(self) -> bool:
        """Refresh the heartbeat once; False (and the lease marked lost) if it was taken."""
        try:
            with session_scope(self.settings) as session:
                held = jobs_db.heartbeat(session, self.job_id, self.worker_id)
        except Exception:  # a DB hiccup is not a lost lease; the fence handles long outages
            log.warning("heartbeat of job %s failed; will retry", self.job_id, exc_info=True)
            return not self.lost
        if held:
            self._last_ok = self._clock()
        else:
            self.mark_lost("another worker holds the lease or the job ended")
        return held

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            if self._clock() - self._last_progress > self.settings.stage_timeout_s:
                self._give_up_hung_stage()
                return
            if not self.beat():
                return

    def progressed(self, stage: str | None = None) -> None:
        """Note that the run advanced (an event, a stop check), in `stage` when named."""
        self._last_progress = self._clock()
        if stage:
            self.stage = stage

    def _give_up_hung_stage(self) -> None:
        timeout = self.settings.stage_timeout_s
        reason = (
            f"the {self.stage} stage made no progress for {timeout:g} s "
            f"(stage_timeout_s); the worker gave up on it"
        )
        try:
            with session_scope(self.settings) as session:
                state = jobs_db.abandon_attempt(session, self.job_id, self.worker_id, reason)
        except Exception:  # not beating any more makes the job stale all the same
            log.warning("job %s: recording the hung stage failed", self.job_id, exc_info=True)
            state = None
        log.error("job %s: %s (job now %s)", self.job_id, reason, state or "stale")
        self.mark_lost(reason)
        if self.on_hang is not None:
            self.on_hang()

    def refreshed(self) -> None:
        """Note a successful lease-guarded write made elsewhere (it refreshes the heartbeat)."""
        self._last_ok = self._clock()

    def mark_lost(self, why: str) -> None:
        """Record that this worker must stop running the job."""
        if not self._lost.is_set():
            log.warning("job %s: lease lost by %s (%s); stopping", self.job_id, self.worker_id, why)
        self._lost.set()

    @property
    def lost(self) -> bool:
        """True once the run must stop without recording an outcome."""
        if not self._lost.is_set() and self._clock() - self._last_ok > self._fence_s:
            self.mark_lost(f"no successful heartbeat for {self._fence_s:.0f} s")
        return self._lost.is_set()

    # -- the run's stop check ---------------------------------------------------------------
    def should_stop(self) -> bool:
        """The run's should_cancel: the lease is lost, or a user asked to cancel."""
        self.progressed()  # the run is calling us, so it is not stuck
        if self.lost:
            return True
        now = self._clock()
        if now - self._cancel_checked_at >= CANCEL_POLL_S:
            self._cancel_checked_at = now
            try:
                with session_scope(self.settings) as session:
                    self._cancel_requested = jobs_db.is_cancel_requested(session, self.job_id)
            except Exception:
                log.warning("cancel check of job %s failed", self.job_id, exc_info=True)
        return self._cancel_requested
