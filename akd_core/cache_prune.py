"""Keep a job cache folder under its size cap: least recently used entries go first.

Pruning runs after each job (the worker, `akd distill --cache-max-gb`), before any new entry
is written (logits, tokens, decoded data: akd_core.data.room), and on demand (`akd cache prune`). An entry that a job holds (its
shared lease, akd_core.cache_lease) is skipped, so the cache may stay over the cap while
jobs run; temporaries being written are not entries and are never touched while their
writer lives (it holds the entry's lease); a dead writer's are deleted.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from akd_core.cache_entries import KINDS, CacheEntry, list_entries
from akd_core.cache_lease import LEASE_DIR, Lease, lease_path
from akd_core.limits import GIB

log = logging.getLogger(__name__)
UNLIMITED = "unlimited"
EVICTING = ".evict."  # prefix of an evicted entry's folder until its bytes are deleted


def parse_max_gb(value: object, name: str) -> float | None:
    """A cache cap in GiB: a number >= 0, or 'unlimited' (None); else ValueError naming `name`."""
    text = str(value).strip().lower()
    if value is None or text == UNLIMITED:
        return None
    try:
        gb = float(text)
    except ValueError:
        gb = float("nan")
    if isinstance(value, bool) or not gb >= 0 or gb == float("inf"):
        raise ValueError(
            f"{name} must be a size in GiB >= 0 (e.g. 50 or 0.5) or '{UNLIMITED}', not {value!r}"
        )
    return gb


def gib_to_bytes(gb: float | None) -> int | None:
    """A cap in GiB as bytes (None stays None: no cap)."""
    return None if gb is None else int(gb * GIB)


@dataclass(frozen=True)
class Pruned:
    """What one pruning pass did."""

    max_bytes: int
    total_before: int
    evicted: list[CacheEntry] = field(default_factory=list)
    in_use: list[CacheEntry] = field(default_factory=list)  # over the cap but held by a job

    @property
    def freed(self) -> int:
        """Bytes removed."""
        return sum(e.size for e in self.evicted)

    @property
    def total_after(self) -> int:
        """Bytes of entries left."""
        return self.total_before - self.freed

    def lines(self) -> list[str]:
        """What a person reads: each removed entry, the total freed, what could not go."""
        out = [
            f"evicted {e.kind} {e.key[:12]} ({human_bytes(e.size)}, least recently used)"
            for e in self.evicted
        ]
        if self.evicted:
            out.append(
                f"cache: freed {human_bytes(self.freed)}; {human_bytes(self.total_after)} left "
                f"(cap {human_bytes(self.max_bytes)})"
            )
        if self.in_use and self.total_after > self.max_bytes:
            out.append(
                f"cache: {len(self.in_use)} entr{'y' if len(self.in_use) == 1 else 'ies'} "
                f"kept although over the cap: in use by a running job"
            )
        return out


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def evict(entry: CacheEntry) -> bool:
    """Remove `entry` unless a job holds it; True when it was removed."""
    lease = Lease.exclusive(entry.path)
    if lease is None:
        return False
    try:
        if not entry.path.exists():
            return False  # another pruner was first
        # Renamed under the lock (readers then find no entry and rebuild it); the bytes are
        # deleted after the lock is let go, so a waiting job is not held up by a large delete.
        try:
            gone = Path(tempfile.mkdtemp(prefix=f"{EVICTING}{entry.path.name}.",
                                         dir=entry.path.parent))  # fmt: skip
            os.rename(entry.path, gone / "entry")
        except OSError as exc:  # e.g. another user's entry: keep it, say so, prune the rest
            log.warning("cache: could not evict %s: %s", entry.path, exc)
            return False
        lease_path(entry.path).unlink(missing_ok=True)
    finally:
        lease.release()
    shutil.rmtree(gone, ignore_errors=True)
    return True


def prune(root: Path, max_bytes: int, incoming: int = 0) -> Pruned:
    """Evict least recently used entries until they and `incoming` new bytes fit `max_bytes`."""
    _remove_leftovers(root)
    entries = list_entries(root)  # least recently used first
    result = Pruned(max_bytes, sum(e.size for e in entries))
    total = result.total_before
    for entry in entries:
        if total + incoming <= max_bytes:
            break
        if evict(entry):
            result.evicted.append(entry)
            total -= entry.size
        elif entry.path.exists():
            result.in_use.append(entry)
        else:  # another pruner removed it meanwhile
            total -= entry.size
    return result


def _remove_leftovers(root: Path) -> None:
    """Delete what killed processes left behind: an evictor's renamed entry (nothing reads
    those folders, and two deleting one at once is harmless), a data writer's temp folder,
    a logit or token writer's temp file."""
    for sub, suffix in KINDS.values():  # one folder per kind: one listing each
        for path in (root / sub).glob(".*"):
            if path.name.startswith(EVICTING):
                shutil.rmtree(path, ignore_errors=True)
            elif (entry := _written_entry(path, suffix)) is not None:
                _remove_orphan(path, entry)


def _written_entry(tmp: Path, suffix: str | None) -> Path | None:
    """The entry that the dot-named `tmp` is being written as, or None when it is no temp
    of a writer: a data folder `.<key>.<random>/` (StoreWriter, or its `.<key>.old.*` trash)
    or a file `.<key><suffix>.<random>` (write_leased: an atomic write's mkstemp name)."""
    name = tmp.name
    if name == LEASE_DIR:
        return None
    if suffix is None:  # data entries are folders
        return tmp.parent / name[1:].split(".")[0] if tmp.is_dir() else None
    target = name[1:].rpartition(".")[0]
    if not tmp.is_file() or not target.endswith(suffix) or target == suffix:
        return None
    return tmp.parent / target


def _remove_orphan(tmp: Path, entry: Path) -> None:
    """Delete `tmp` when no live writer of `entry` holds its lease: a writer takes it before
    making the temp (folder or file) and keeps it until the temp is renamed or gone. The
    lease, not the temp's age, decides: a dead process's flock is gone at once, and a slow
    live write (tens of GB on a busy disk) is never mistaken for an abandoned one."""
    lease = Lease.exclusive(entry)
    if lease is None:
        return  # a writer (or a reader) of that key is alive
    try:
        log.info("cache: removing %s, left by a job that ended while writing it", tmp)
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if not entry.exists():
            lease_path(entry).unlink(missing_ok=True)  # no stray lock file for a missing entry
    finally:
        lease.release()


def prune_and_tell(
    root: Path, max_bytes: int | None, tell: Callable[[str], None] | None, incoming: int = 0
) -> Pruned | None:
    """prune(), with each line of what it did logged and passed to `tell` (None: no cap)."""
    if max_bytes is None or not root.exists():
        return None
    result = prune(root, max_bytes, incoming)
    for line in result.lines():
        log.info("%s (%s)", line, root)
        if tell is not None:
            tell(line)
    return result


def prune_after_job(
    root: Path, max_bytes: int | None, tell: Callable[[str], None] | None
) -> list[str]:
    """The pass after a job ends: its lines (also given to `tell`); never raises."""
    gc.collect()  # a finished job's arrays caught in reference cycles let go of their leases
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        if tell is not None:
            tell(line)

    try:
        prune_and_tell(root, max_bytes, keep)
    except OSError as exc:  # a full or read-only disk must not fail a finished job
        log.warning("cache: pruning %s failed: %s", root, exc)
    return lines
