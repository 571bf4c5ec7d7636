"""What the sandboxed teacher process gives up before it opens the teacher file (Linux).

Each layer is applied where the OS allows it and reported by name, so the parent can log
which ones hold: a network namespace of its own (no interface but a down loopback),
resource limits, an unprivileged uid/gid (only when started as root), no_new_privs, and
death with its parent.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from dataclasses import dataclass

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True)
class Limits:
    """Resource limits of the teacher process; memory is not capped on CUDA (drivers map a lot)."""

    cpu_seconds: int = 48 * 3600  # CPU time over the whole job, all threads together
    memory_bytes: int | None = 16 << 30  # address space; None leaves it unlimited
    file_bytes: int = 16 << 20  # largest file it may write (its stderr log included)
    open_files: int = 256


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> str | None:
    """unshare(2); None on success, else the reason."""
    unshare = getattr(_libc(), "unshare", None)
    if unshare is None:
        return "no unshare(2) on this OS"
    if unshare(flags) == 0:
        return None
    return os.strerror(ctypes.get_errno())


def isolate_network() -> str:
    """Move into a network namespace of its own; say how, or why not."""
    if os.geteuid() == 0:
        why = _unshare(CLONE_NEWNET)
        return "own network namespace" if why is None else f"not isolated (unshare: {why})"
    why = _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    if why is None:
        return "own user and network namespace"
    return f"not isolated (unprivileged unshare: {why})"


@dataclass(frozen=True)
class Early:
    """What the child did first, before any import could start a thread."""

    started_as: int  # the euid it was started with (a user namespace changes what it sees)
    network: str  # how the network was isolated, or why it was not


def isolate_early(parent_pid: int | None = None) -> Early:
    """Die with the parent, then take the network namespace (unshare needs a single thread)."""
    if parent_pid is not None:
        # At once, not only after loading: a spare whose parent died while it imported would
        # otherwise live on, and onnxruntime's import writes into its (swept) working folder.
        die_with_parent(parent_pid)
    started_as = os.geteuid()
    return Early(started_as, isolate_network())


def apply_limits(limits: Limits, cuda: bool) -> str:
    """Set the rlimits (core 0, file size, open files, CPU, memory unless CUDA)."""
    wanted = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_FSIZE: limits.file_bytes,
        resource.RLIMIT_NOFILE: limits.open_files,
        resource.RLIMIT_CPU: limits.cpu_seconds,
    }
    if limits.memory_bytes is not None and not cuda:
        wanted[resource.RLIMIT_AS] = limits.memory_bytes
    names = {resource.RLIMIT_CORE: "core", resource.RLIMIT_FSIZE: "fsize",
             resource.RLIMIT_NOFILE: "nofile", resource.RLIMIT_CPU: "cpu"}  # fmt: skip
    names[resource.RLIMIT_AS] = "as"
    applied = []
    for which, value in wanted.items():
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # an unprivileged process cannot raise its hard limit
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError) as exc:  # e.g. RLIMIT_AS where the OS does not enforce it
            applied.append(f"{names[which]} not set ({exc})")
            continue
        applied.append(f"{names[which]} {value}")
    return ", ".join(applied)


def drop_user(uid: int, gid: int, started_as: int) -> str:
    """Become uid/gid with no supplementary groups when started as root; else say who it stays."""
    if started_as != 0:
        return f"unchanged (started as uid {started_as}, not root)"
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    return f"uid {uid} gid {gid}"


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the parent dies; exit now if it already has."""
    prctl = getattr(_libc(), "prctl", None)
    if prctl is not None:  # Linux; elsewhere the closed stdin pipe still ends the child
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def bind_to_parent(parent_pid: int) -> None:
    """No new privileges (setuid binaries), and die when the parent dies."""
    prctl = getattr(_libc(), "prctl", None)
    if prctl is not None:
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    die_with_parent(parent_pid)  # again: changing uid (drop_user, before this) clears it


def reduce_rights(
    uid: int, gid: int, limits: Limits, cuda: bool, parent_pid: int, early: Early
) -> dict[str, str]:
    """Apply the other layers after `isolate_early`: limits, then the uid drop, then the rest."""
    layers = {"network": early.network, "limits": apply_limits(limits, cuda)}
    layers["user"] = drop_user(uid, gid, early.started_as)
    bind_to_parent(parent_pid)
    return layers
