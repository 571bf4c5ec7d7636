"""Starting, stopping and reusing teacher processes (the parent side, before any protocol).

A child is started for a runtime: "onnx" (numpy, onnx, onnxruntime: 0.3 to 1.3 s, 100 MB)
for ONNX teachers, "torch" (also torch: 1.4 to 11 s, 340 MB) for the others. Per
parent process one warm spare of each runtime it has used is started ahead: the next
teacher of that runtime takes it, so only the first teacher of a runtime waits for the
imports. A spare has not reduced its rights yet but has read nothing untrusted; it does
so when it receives its load request.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Literal

from akd_core.onnx_classifier import ONNX_FORMATS
from akd_core.sandbox import protocol

ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds akd_core
# -I: no PYTHON* variables, no user site, and not the working directory (the upload's) on sys.path.
# The network namespace comes first, while the interpreter has one thread (torch starts more).
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from akd_core.sandbox.rights import isolate_early; early = isolate_early(int(sys.argv[3])); "
    "from akd_core.sandbox.child import main; main(early, sys.argv[2])"
)
Runtime = Literal["onnx", "torch"]
# Passed through because GPUs and their libraries need them; nothing else is inherited.
PASS_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
WORKDIR_PREFIX = "akd-teacher-"
# akd-teacher-<host>-<parent pid>-<random>: the sweep below can tell whose a folder was.
_OWNED = re.compile(re.escape(WORKDIR_PREFIX) + r"(?P<host>[\w.]*)-(?P<pid>\d+)-\w+$")
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


def runtime_of(fmt: str) -> Runtime:
    """The runtime a teacher format needs: ONNX files and folders never need torch."""
    return "onnx" if fmt in ONNX_FORMATS else "torch"


def _child_env(workdir: Path) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    return env


class Child:
    """The process, its pipes, working directory and stderr log; `stop` is idempotent."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, errlog: IO[bytes],
                 key: tuple[object, ...]) -> None:  # fmt: skip
        self.proc, self.workdir, self.errlog, self.key = proc, workdir, errlog, key
        assert proc.stdin is not None and proc.stdout is not None
        self.fd_in, self.fd_out = proc.stdin.fileno(), proc.stdout.fileno()

    def install(self, path: Path, uid: int, gid: int) -> str:
        """Copy the teacher file (or hf folder) into the working directory, for the child only."""
        copy = self.workdir / path.name
        if path.is_dir():  # a transformers model folder (format hf), already checked
            shutil.copytree(path, copy, symlinks=True)
            entries = [copy, *copy.rglob("*")]
        else:
            shutil.copyfile(path, copy)  # the unprivileged child cannot read the upload folder
            entries = [copy]
        for entry in entries:
            os.chmod(entry, 0o700 if entry.is_dir() else 0o400)
            if os.geteuid() == 0:
                os.chown(entry, uid, gid)
        return copy.name

    def how_it_ended(self) -> str:
        """'exited with code N', 'was killed by SIGX', or 'stopped answering'."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def stderr_tail(self) -> str:
        """The last 2,000 bytes the child wrote to stderr (and stdout), for the log."""
        try:
            self.errlog.seek(0, os.SEEK_END)
            self.errlog.seek(max(0, self.errlog.tell() - 2000))
            return self.errlog.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        """Ask it to leave, kill it (and its process group) if it does not, clean up."""
        if self.proc.poll() is None:
            try:
                protocol.send(self.fd_in, {"op": "bye"}, deadline=time.monotonic() + 1)
                self.proc.wait(timeout=2)
            except (protocol.ChannelClosed, protocol.ChannelTimeout, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # its own session: children go too
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()  # and itself, should it not lead a process group
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.errlog.close()
        if self.workdir.name.startswith(WORKDIR_PREFIX):  # never anything but our own mkdtemp
            shutil.rmtree(self.workdir, ignore_errors=True)


def _host() -> str:
    return re.sub(r"[^\w.]", "_", socket.gethostname())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_orphans(workdir_root: Path | None) -> list[Path]:
    """Remove working folders whose parent died without cleaning up; the folders removed.

    A parent that ends with os._exit (a Celery prefork child) or is killed leaves its spare's
    folder behind. Only folders of this host whose recorded parent pid no longer runs go:
    a folder of another host (a temp folder shared between containers) is never touched.
    """
    root = Path(workdir_root or tempfile.gettempdir())
    removed = []
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            m = _OWNED.match(entry.name)
            if m and m["host"] == _host() and not _alive(int(m["pid"])) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


_swept: set[tuple[int, Path | None]] = set()


def spawn(workdir_root: Path | None, uid: int, gid: int, runtime: Runtime = "onnx") -> Child:
    """Start a child interpreter for `runtime` in a fresh working directory; it awaits a request."""
    if (os.getpid(), workdir_root) not in _swept:  # once per process and folder
        _swept.add((os.getpid(), workdir_root))
        sweep_orphans(workdir_root)
    prefix = f"{WORKDIR_PREFIX}{_host()}-{os.getpid()}-"
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir_root))  # mode 0700
    if os.geteuid() == 0:
        os.chown(workdir, uid, gid)
    errlog = tempfile.TemporaryFile()  # noqa: SIM115 (Child.stop closes it); unlinked, fd only
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", BOOT, ROOT, runtime, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=_child_env(workdir),
        cwd=workdir,
        close_fds=True,
        start_new_session=True,
    )
    child = Child(proc, workdir, errlog, (BOOT, workdir_root, uid, gid, runtime))
    for fd in (child.fd_in, child.fd_out):
        with contextlib.suppress(OSError):  # fewer wake-ups per batch; Linux only
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    os.set_blocking(child.fd_in, False)  # writes wait in select, under a deadline
    return child


class _Spare:
    """At most one idle child per runtime and parent process, of the key it was started with."""

    children: dict[Runtime, Child] = {}  # runtime -> its spare
    pid: int = 0  # the process that started them (a forked parent must not share them)

    @classmethod
    def _pop(cls, runtime: Runtime) -> Child | None:
        if cls.pid != os.getpid():  # inherited through fork: another process's children
            cls.children, cls.pid = {}, os.getpid()
        return cls.children.pop(runtime, None)

    @classmethod
    def take(cls, workdir_root: Path | None, uid: int, gid: int, keep_warm: bool,
             runtime: Runtime) -> Child:  # fmt: skip
        spare = cls._pop(runtime)
        if spare is not None and (spare.key != (BOOT, workdir_root, uid, gid, runtime)
                                  or spare.proc.poll() is not None):  # fmt: skip
            spare.stop()
            spare = None
        child = spare or spawn(workdir_root, uid, gid, runtime)
        if keep_warm:
            cls.children[runtime] = spawn(workdir_root, uid, gid, runtime)
        return child

    @classmethod
    def prestart(cls, workdir_root: Path | None, uid: int, gid: int, runtime: Runtime) -> None:
        spare = cls._pop(runtime)
        cls.children[runtime] = spare or spawn(workdir_root, uid, gid, runtime)

    @classmethod
    def stop(cls) -> None:
        spares = cls.children.values() if cls.pid == os.getpid() else ()
        for spare in list(spares):
            spare.stop()
        cls.children = {}


take_child = _Spare.take
prestart_child = _Spare.prestart
atexit.register(_Spare.stop)
