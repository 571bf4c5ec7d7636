"""The reaper: re-enqueue jobs whose worker died or whose message was lost; drop old events.

A worker killed outright (SIGKILL, OOM, power loss) leaves its message unacknowledged in
Redis until the visibility timeout (hours) and its job row `running` with a heartbeat that
stops moving. The reaper watches heartbeats instead: a stale job gets a new message, and
the claim's compare-and-set decides what happens (take over with attempt + 1, finish a
cancellation, or fail the job once it is out of attempts). A job left queued for longer
than the staleness threshold gets a new message too: its first may never have reached the
broker. Duplicate messages are harmless: only one claim of a queued job wins, and a claim
of a job with a fresh lease is dropped.

Re-sends are counted on the job row and back off exponentially (see akd_service.db.upkeep); after
reaper_max_resends with no claim, the job is failed with a reason instead of being re-sent
forever. Each pass also deletes, in bounded batches, the events of jobs that finished more
than event_retention_days ago.

Run it as a thread inside `akd serve`, or alone: `python -m worker.reaper`.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import update

from akd_service.config import Settings
from akd_service.db import upkeep
from akd_service.db.models import Job
from akd_service.db.session import session_scope
from akd_service.db.states import CANCELLING, RUNNING
from akd_service.queue import CeleryQueue, Queue

log = logging.getLogger(__name__)
# Events deleted per transaction, and batches per pass: bounded work, short locks.
PURGE_BATCH = 1000
PURGE_BATCHES_PER_PASS = 10


class Reaper:
    """Sends stale and orphaned jobs a new message (with backoff) and purges old events."""

    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue
        # Half the staleness threshold: a dead worker's job waits at most 1.5x stale_after_s.
        self.interval_s = max(0.5, self.settings.stale_after_s / 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reap_once(self) -> list[str]:
        """Re-send the jobs whose next message is due, purge old events; the ids sent.

        A job still queued after stale_after_s may have lost its message (the broker was
        down at POST /jobs, Redis lost it, the task failed before claiming); if it did not,
        the extra message is dropped by the claim's compare-and-set.
        """
        sent = self._resend(ignore_backoff=False)
        self.purge_events()
        return sent

    def requeue_unfinished(self) -> list[str]:
        """Enqueue queued and stale jobs (at start: messages may have been lost with the broker)."""
        return self._resend(ignore_backoff=True)

    def _resend(self, *, ignore_backoff: bool) -> list[str]:
        s = self.settings
        with session_scope(s) as session:
            due = upkeep.resend_due(session, s.stale_after_s, ignore_backoff=ignore_backoff)
        sent = []
        for job in due:
            if job.resends >= s.reaper_max_resends:
                with session_scope(s) as session:
                    state = upkeep.give_up(session, job, s.stale_after_s)
                if state is not None:
                    log.warning("job %s: %s after %d re-sends", job.id, state, job.resends)
                continue
            try:
                self.queue.enqueue(job.id)
            except Exception:
                log.warning("could not enqueue job %s; will retry", job.id, exc_info=True)
                continue
            with session_scope(s) as session:
                upkeep.mark_resent(session, job.id)
            sent.append(job.id)
        if sent:
            log.info("re-enqueued %d job(s): %s", len(sent), ", ".join(sent))
        return sent

    def purge_events(self) -> int:
        """Delete events of jobs finished over event_retention_days ago (0 keeps them)."""
        days = self.settings.event_retention_days
        if days <= 0:
            return 0
        total = 0
        for _ in range(PURGE_BATCHES_PER_PASS):
            with session_scope(self.settings) as session:
                n = upkeep.purge_events(session, days, PURGE_BATCH)
            total += n
            if n < PURGE_BATCH:
                break
        if total:
            log.info("deleted %d event(s) of jobs finished over %g day(s) ago", total, days)
        return total

    def run_forever(self) -> None:
        """Reap every interval_s until stop() is called."""
        while not self._stop.wait(self.interval_s):
            try:
                self.reap_once()
            except Exception:  # e.g. the database is briefly locked: try again next period
                log.warning("reaper pass failed", exc_info=True)

    def start(self) -> Reaper:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run_forever, name="akd-reaper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def release_leases(settings: Settings, owner_prefix: str) -> list[str]:
    """Expire the heartbeats of jobs leased by workers whose id starts with owner_prefix.

    Called by a supervisor after it stopped its own workers: their jobs become claimable at
    once on the next start instead of after stale_after_s.
    """
    with session_scope(settings) as session:
        ids = list(
            session.scalars(
                update(Job)
                .where(
                    Job.state.in_((RUNNING, CANCELLING)),
                    Job.lease_owner.startswith(owner_prefix, autoescape=True),
                )
                .values(heartbeat_at=None)
                .returning(Job.id)
            )
        )
    return ids


def main() -> None:
    """Run the reaper as its own process (docker-compose runs one next to the workers)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reaper %(levelname)s %(message)s")
    settings = Settings()  # this process's entry point: the AKD_* environment
    reaper = Reaper(settings, CeleryQueue.from_settings(settings))
    reaper.requeue_unfinished()
    with contextlib.suppress(KeyboardInterrupt):
        reaper.run_forever()


if __name__ == "__main__":
    main()
