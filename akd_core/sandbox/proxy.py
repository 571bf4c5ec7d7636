"""The parent side of the sandbox: start the teacher process and talk to it as a Teacher."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from akd_core.errors import SpecError, TeacherLoadError
from akd_core.models.onnx_runner import OnnxInput
from akd_core.sandbox import protocol
from akd_core.sandbox.rights import Limits
from akd_core.spec import TeacherSpec
from akd_core.teachers import Teacher

log = logging.getLogger(__name__)

ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds akd_core
# -I: no PYTHON* variables, no user site, and not the working directory (the upload's) on sys.path.
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from akd_core.sandbox.child import main; main()"
)
# Passed through because GPUs and their libraries need them; nothing else is inherited.
PASS_ENV = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
_ERRORS = {"TeacherLoadError": TeacherLoadError, "SpecError": SpecError}


@dataclass(frozen=True)
class SandboxPolicy:
    """How a teacher process is confined: the user it becomes (when root), limits, timeouts."""

    uid: int = 65534  # nobody
    gid: int = 65534  # nogroup
    limits: Limits = field(default_factory=Limits)
    start_timeout_s: float = 600.0  # interpreter start, imports and loading the file
    call_timeout_s: float = 3600.0  # one logits request
    workdir_root: Path | None = None  # where working directories are made (the system tmp)
    # Tests only: False skips the TorchScript allow-list so that tests can prove the
    # sandbox alone contains a hostile teacher. No setting or spec field reaches it.
    check_torchscript: bool = True


def _child_env(workdir: Path, threads: int) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    return env


class _Child:
    """The process, its pipes, working directory and stderr log; `stop` is idempotent."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, errlog: IO[bytes]) -> None:
        self.proc, self.workdir, self.errlog = proc, workdir, errlog
        assert proc.stdin is not None and proc.stdout is not None
        self.fd_in, self.fd_out = proc.stdin.fileno(), proc.stdout.fileno()

    def how_it_ended(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def stderr_tail(self) -> str:
        try:
            self.errlog.seek(0, os.SEEK_END)
            self.errlog.seek(max(0, self.errlog.tell() - 2000))
            return self.errlog.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                protocol.send(self.fd_in, {"op": "bye"}, deadline=time.monotonic() + 1)
                self.proc.wait(timeout=2)
            except (protocol.ChannelClosed, protocol.ChannelTimeout, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # its own session: children go too
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self.errlog.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn(path: Path, policy: SandboxPolicy, threads: int) -> _Child:
    workdir = Path(tempfile.mkdtemp(prefix="akd-teacher-", dir=policy.workdir_root))  # mode 0700
    copy = workdir / path.name
    shutil.copyfile(path, copy)  # the unprivileged child cannot read the upload folder
    os.chmod(copy, 0o400)
    if os.geteuid() == 0:
        for p in (workdir, copy):
            os.chown(p, policy.uid, policy.gid)
    errlog = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _Child.stop); unlinked: the child writes by fd, nobody can open it
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", BOOT, ROOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=_child_env(workdir, threads),
        cwd=workdir,
        close_fds=True,
        start_new_session=True,
    )
    child = _Child(proc, workdir, errlog)
    for fd in (child.fd_in, child.fd_out):
        with contextlib.suppress(OSError):  # fewer wake-ups per batch; Linux only
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    os.set_blocking(child.fd_in, False)  # writes wait in select, under a deadline
    return child


class SandboxedTeacher(Teacher):
    """A Teacher whose model lives in a confined child process; arrays cross by pipe."""

    def __init__(self, child: _Child, policy: SandboxPolicy, hello: dict[str, Any],
                 fingerprint: str, device: torch.device) -> None:  # fmt: skip
        super().__init__(str(hello["format"]), fingerprint, device)
        self._child: _Child | None = child
        self._released = False
        self._policy = policy
        self._stop = weakref.finalize(self, child.stop)  # a forgotten teacher still ends its child
        self.param_count = hello.get("params")
        self.sandbox_layers: dict[str, str] = dict(hello.get("layers", {}))
        inp = hello.get("declared_input")
        if inp is not None:
            self.declared_input = OnnxInput(inp[0], tuple(inp[1]), inp[2])

    def _fail(self, doing: str, exc: Exception) -> TeacherLoadError:
        child, self._child = self._child, None
        assert child is not None
        if isinstance(exc, protocol.ChannelTimeout):
            what = f"did not answer within {self._policy.call_timeout_s:g} s while {doing}; it was stopped"
        elif isinstance(exc, protocol.ProtocolError):
            what = f"sent a malformed answer while {doing} ({exc}); it was stopped"
        else:
            what = f"{child.how_it_ended()} while {doing}"
        log.warning("teacher process %s; its stderr ends with: %s", what, child.stderr_tail())
        self._stop()
        return TeacherLoadError(
            f"the teacher process {what}; the teacher may be hostile or need more than the "
            "sandbox allows (memory, CPU time, time per call)",
            field="teacher.source",
        )

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for a whole array, computed `batch_size` rows at a time."""
        if self._released:
            raise RuntimeError("the teacher was released")
        if self._child is None:
            raise TeacherLoadError(
                "the teacher process was stopped earlier", field="teacher.source"
            )
        doing = f"computing logits for {len(x)} samples"
        deadline = time.monotonic() + self._policy.call_timeout_s
        cap = min(1 << 31, (len(x) + 1) * 4 * 65536)  # at most 65,536 float32 logits a sample
        try:
            protocol.send(
                self._child.fd_in,
                {"op": "logits", "batch_size": max(1, batch_size)},
                (np.asarray(x),),
                deadline,
            )
            answer, arrays = protocol.receive(self._child.fd_out, deadline, max_bytes=cap)
        except (protocol.ChannelClosed, protocol.ChannelTimeout, protocol.ProtocolError) as exc:
            raise self._fail(doing, exc) from None
        if not answer.get("ok"):
            raise TeacherLoadError(
                f"the teacher rejected input of shape {tuple(x.shape)}: {answer.get('message')}",
                field="teacher.source",
            )
        if len(arrays) != 1 or arrays[0].dtype != np.float32:
            raise self._fail(doing, protocol.ProtocolError("no float32 logits"))
        return arrays[0]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) float32 logits on x's device."""
        arr = x.detach().cpu().numpy()
        return torch.from_numpy(self.logits_for(arr, max(1, len(arr)))).to(x.device)

    def release(self) -> None:
        """Stop the teacher process and remove its working directory."""
        self._child, self._released = None, True
        self._stop()


def start_teacher(
    fmt: str,
    path: Path,
    fingerprint: str,
    device: torch.device,
    spec: TeacherSpec,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None,
    policy: SandboxPolicy,
) -> SandboxedTeacher:
    """Start a confined process that loads `path` and serve it as a Teacher."""
    child = _spawn(path, policy, torch.get_num_threads())
    request = {
        "format": fmt, "file": path.name, "fingerprint": fingerprint, "device": str(device),
        "spec": spec.model_dump(mode="json"), "num_classes": num_classes,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "threads": torch.get_num_threads(), "uid": policy.uid, "gid": policy.gid,
        "limits": asdict(policy.limits), "parent_pid": os.getpid(),
        "check_torchscript": policy.check_torchscript,
    }  # fmt: skip
    deadline = time.monotonic() + policy.start_timeout_s
    try:
        protocol.send(child.fd_in, request, deadline=deadline)
        hello, _ = protocol.receive(child.fd_out, deadline, max_bytes=0)
    except (protocol.ChannelClosed, protocol.ChannelTimeout, protocol.ProtocolError) as exc:
        how = f"did not load within {policy.start_timeout_s:g} s" if isinstance(
            exc, protocol.ChannelTimeout) else child.how_it_ended()  # fmt: skip
        log.warning("teacher process %s; its stderr ends with: %s", how, child.stderr_tail())
        child.stop()
        raise TeacherLoadError(
            f"the teacher process {how} while loading {path.name!r}", field="teacher.source"
        ) from None
    if not hello.get("ok"):
        child.stop()
        error = _ERRORS.get(str(hello.get("kind")), TeacherLoadError)
        message = str(hello.get("message"))
        if hello.get("kind") not in _ERRORS:
            message = f"{path.name!r} could not be loaded: {message}"
        raise error(message, field=hello.get("field") or "teacher.source")
    log.info("teacher process started: %s", hello.get("layers"))
    return SandboxedTeacher(child, policy, hello, fingerprint, device)
