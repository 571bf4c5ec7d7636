"""Leases on cache entries: a shared flock while a job uses an entry, an exclusive one to evict it.

Each entry `root/<name>` (a file or a folder) has a lock file `root/.leases/<name>.lock`.
A job holds a shared flock on it for as long as it reads the entry, whichever process or
worker it runs in; the evictor asks for an exclusive flock without waiting, so an entry in
use is skipped, never removed. Taking a lease touches the lock file: its mtime is the
entry's "last used" (atime is not kept on noatime/relatime mounts, and reads through an open
file or a mapping do not update it anyway).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path

from akd_core.fileio import atomic_write

log = logging.getLogger(__name__)
LEASE_DIR = ".leases"


def lease_path(entry: Path) -> Path:
    """The lock file of the cache entry `entry`."""
    return entry.parent / LEASE_DIR / f"{entry.name}.lock"


def _lock(path: Path, flags: int) -> int | None:
    """An open descriptor of `path` holding flock `flags`, or None when it would block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # flock needs no write access
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        # An evictor unlinks the lock file while it holds it: a lock won on the unlinked
        # file protects nothing, so take the one now at the path instead.
        try:
            here = os.stat(path)
        except FileNotFoundError:
            here = None
        held = os.fstat(fd)
        if here is not None and (here.st_ino, here.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)


class Lease:
    """A held flock on one entry's lock file; released by release(), `with`, or garbage collection."""

    def __init__(self, fd: int | None, entry: Path) -> None:
        self._fd: int | None = fd
        self.entry = entry

    @classmethod
    def shared(cls, entry: Path) -> Lease:
        """Wait for a shared lease on `entry` (only an eviction in progress holds it off) and
        record the use. A cache folder where no lock file can be made (read-only) gives a
        lease that holds nothing: bookkeeping never fails a job."""
        try:
            fd = _lock(lease_path(entry), fcntl.LOCK_SH)
        except OSError as exc:
            log.warning("cache: no lease on %s (%s); it may be evicted while in use", entry, exc)
            return cls(None, entry)
        assert fd is not None  # a blocking lock either succeeds or raises
        # Another user's lock file cannot be touched: the use goes unrecorded, the lease holds.
        with contextlib.suppress(OSError):
            os.utime(fd)  # "last used": now
        return cls(fd, entry)

    @classmethod
    def exclusive(cls, entry: Path) -> Lease | None:
        """The exclusive lease that eviction needs, or None while any job holds the entry."""
        fd = _lock(lease_path(entry), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None if fd is None else cls(fd, entry)

    @property
    def held(self) -> bool:
        """True until released."""
        return self._fd is not None

    def release(self) -> None:
        """Let go of the lease (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def in_use(entry: Path) -> bool:
    """True while some process holds a shared lease on `entry`."""
    if not lease_path(entry).exists():
        return False  # a holder would have created it
    probe = Lease.exclusive(entry)
    if probe is None:
        return True
    probe.release()
    return False


def last_used(entry: Path) -> float:
    """When `entry` was last leased or written (epoch seconds)."""
    times = [0.0]
    for path in (lease_path(entry), entry):
        try:
            times.append(path.stat().st_mtime)
        except FileNotFoundError:
            continue
    return max(times)


def write_leased(entry: Path, write: Callable[[Path], object]) -> Path:
    """Write the file entry `entry` atomically while holding its lease: from before its temp
    file exists until it is renamed or removed, so pruning can tell a live writer's temp file
    (lease held) from one a killed writer left (the kernel drops a dead process's flock)."""
    with Lease.shared(entry):
        return atomic_write(entry, write)
