"""Per-key caps on long-lived requests (event streams, uploads): past the cap, a 429."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.api.problems import ApiProblem

RETRY_AFTER_S = 10  # long-lived requests end on their own within minutes; ask again soon


class SlotLimiter:
    """Counts one kind of long-lived request per owner and refuses past `cap` at once."""

    def __init__(self, what: str, setting: str, cap: int) -> None:
        self.what = what
        self.setting = setting
        self.cap = cap
        self._counts: dict[str, int] = {}
        # Held only for a dict update: dependencies may run on worker threads.
        self._lock = threading.Lock()

    def open_for(self, owner: str) -> int:
        """How many of these requests `owner` has open now."""
        with self._lock:
            return self._counts.get(owner, 0)

    @contextmanager
    def hold(self, owner: str) -> Iterator[None]:
        """Take one slot for `owner` for the duration of the block; 429 when none is free."""
        with self._lock:
            held = self._counts.get(owner, 0)
            if held >= self.cap:
                raise ApiProblem(
                    429,
                    f"this key already has {held} {self.what} open; at most {self.cap} at once "
                    f"(setting {self.setting}); close one or retry in {RETRY_AFTER_S} s",
                    title="Too many concurrent requests",
                    slug="too-many-requests",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._counts[owner] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._counts[owner] - 1
                if left:
                    self._counts[owner] = left
                else:
                    del self._counts[owner]
