"""Streamed batches read and decoded ahead of the step, on one background thread.

Reading the data cache (pread) and decoding (numpy casts and arithmetic) release the GIL,
so the next batch is made while the current one trains. The epoch's order is fixed before
the thread starts, so the batches and their values are exactly those made in the step.
At most `ahead` decoded batches wait besides the one the trainer holds: memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

AHEAD = 1  # batches decoded ahead of the one training; 0 decodes in the step (no thread)
THREAD_NAME = "akd-prefetch"


class Prefetcher(Generic[T]):
    """`make(0)`, `make(1)`, ... `make(count - 1)` made on a thread, handed out in order by
    `next()`; use it as a context manager so the thread always ends (cancel, error, epoch end)."""

    def __init__(self, make: Callable[[int], T], count: int, ahead: int = AHEAD) -> None:
        if ahead < 1:
            raise ValueError(f"ahead must be at least 1 batch, got {ahead}")
        self._make, self._count, self._taken = make, count, 0
        # A slot per batch made and not yet handed out: the bound on decoded batches waiting.
        self._slots = threading.Semaphore(ahead)
        self._made: queue.SimpleQueue[tuple[T | None, BaseException | None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i in range(self._count):
            self._slots.acquire()
            if self._stop.is_set():
                return
            try:
                # Put straight away: a local name would keep the batch alive while waiting.
                self._made.put((self._make(i), None))
            except BaseException as exc:  # re-raised in the trainer by next()
                self._made.put((None, exc))
                return

    def next(self) -> T:
        """The next batch, in order; an error raised while making it is raised here."""
        if self._taken >= self._count:
            raise IndexError(f"all {self._count} batches were already taken")
        item, exc = self._made.get()
        self._taken += 1
        self._slots.release()  # the trainer holds this batch now: make the one after it
        if exc is not None:
            raise exc
        assert item is not None
        return item

    def close(self) -> None:
        """Stop the thread (it finishes at most the batch it is making) and drop what waits."""
        self._stop.set()
        self._slots.release()  # wake it if it waits for a free slot
        self._thread.join()
        while not self._made.empty():
            self._made.get_nowait()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
