"""The reaper: re-enqueue jobs whose worker died or whose message was lost.

A worker killed outright (SIGKILL, OOM, power loss) leaves its message unacknowledged in
Redis until the visibility timeout (hours) and its job row `running` with a heartbeat that
stops moving. The reaper watches heartbeats instead: a stale job gets a new message, and
the claim's compare-and-set decides what happens (take over with attempt + 1, finish a
cancellation, or fail the job once it is out of attempts). A job left queued for longer
than the staleness threshold gets a new message too: its first may never have reached the
broker. Duplicate messages are harmless: only one claim of a queued job wins, and a claim
of a job with a fresh lease is dropped.

Run it as a thread inside `akd serve`, or alone: `python -m worker.reaper`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import update

from app.core.config import Settings, get_settings
from app.db import jobs as jobs_db
from app.db.models import CANCELLING, RUNNING, Job
from app.db.session import session_scope

log = logging.getLogger(__name__)
Enqueue = Callable[[str], None]


def _default_enqueue(job_id: str) -> None:
    from app.queue import enqueue

    enqueue(job_id)


class Reaper:
    """Finds stale and orphaned jobs and sends each a new message, at most once per period."""

    def __init__(
        self,
        settings: Settings | None = None,
        enqueue: Enqueue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or get_settings()
        self.enqueue = enqueue or _default_enqueue
        self._clock = clock
        self._sent: dict[str, float] = {}  # job id -> when we last enqueued it
        # Half the staleness threshold: a dead worker's job waits at most 1.5x stale_after_s.
        self.interval_s = max(0.5, self.settings.stale_after_s / 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reap_once(self) -> list[str]:
        """Enqueue stale jobs, and queued jobs older than stale_after_s, not enqueued within
        the last stale_after_s; return their ids.

        A job still queued that long may have lost its message (the broker was down at
        POST /jobs, Redis lost it, the task failed before claiming); if it did not, the
        extra message is dropped by the claim's compare-and-set.
        """
        after = self.settings.stale_after_s
        with session_scope(self.settings) as session:
            ids = jobs_db.stale_jobs(session, after) + jobs_db.queued_jobs(session, after)
        return self._send(ids)

    def requeue_unfinished(self) -> list[str]:
        """Enqueue queued and stale jobs (at start: messages may have been lost with the broker)."""
        with session_scope(self.settings) as session:
            ids = jobs_db.queued_jobs(session) + jobs_db.stale_jobs(
                session, self.settings.stale_after_s
            )
        return self._send(ids)

    def _send(self, job_ids: list[str]) -> list[str]:
        now = self._clock()
        # Forget old entries so the map cannot grow without bound.
        self._sent = {j: t for j, t in self._sent.items() if now - t < self.settings.stale_after_s}
        sent = []
        for job_id in dict.fromkeys(job_ids):
            if job_id in self._sent:
                continue
            try:
                self.enqueue(job_id)
            except Exception:
                log.warning("could not enqueue job %s; will retry", job_id, exc_info=True)
                continue
            self._sent[job_id] = now
            sent.append(job_id)
        if sent:
            log.info("re-enqueued %d job(s): %s", len(sent), ", ".join(sent))
        return sent

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
    reaper = Reaper()
    reaper.requeue_unfinished()
    with contextlib.suppress(KeyboardInterrupt):
        reaper.run_forever()


if __name__ == "__main__":
    main()
