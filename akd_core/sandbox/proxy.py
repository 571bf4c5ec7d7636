"""The parent side of the sandbox: start the teacher process and talk to it as a Teacher."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from akd_core.data.teacher_normalize import declared_mean_std
from akd_core.errors import SpecError, TeacherLoadError
from akd_core.latency import latency_from_dict
from akd_core.models.onnx_runner import OnnxInput
from akd_core.sandbox import protocol
from akd_core.sandbox.process import Child, Runtime, prestart_child, runtime_of, take_child
from akd_core.sandbox.rights import Limits
from akd_core.spec import TeacherSpec
from akd_core.teachers import Teacher

log = logging.getLogger(__name__)

_ERRORS = {"TeacherLoadError": TeacherLoadError, "SpecError": SpecError}
# Spec fields a load error may name (the child is untrusted: anything else is replaced).
_FIELD = re.compile(r"(teacher|dataset)(\.[A-Za-z0-9_]{1,64}){0,3}")


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
    keep_warm: bool = True  # start the next teacher's process ahead (see sandbox.process)


class SandboxedTeacher(Teacher):
    """A Teacher whose model lives in a confined child process; arrays cross by pipe."""

    def __init__(self, child: Child, policy: SandboxPolicy, hello: dict[str, Any],
                 fingerprint: str, device: torch.device) -> None:  # fmt: skip
        super().__init__(str(hello["format"]), fingerprint, device)
        self._child: Child | None = child
        self._released = False
        self._policy = policy
        self._stop = weakref.finalize(self, child.stop)  # a forgotten teacher still ends its child
        self.param_count, self.declared_input, self.sandbox_layers = _parse_hello(hello)
        self.declared_preprocessing = _parse_declared(hello.get("declared_preprocessing"))
        provider = hello.get("execution_provider")  # untrusted: a short name or nothing
        self.execution_provider = (
            provider if isinstance(provider, str) and len(provider) < 64 else None
        )
        self._classes: int | None = None  # K of the first answer: every answer must keep it

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
                f"the teacher rejected input of shape {tuple(x.shape)}: "
                f"{_text(answer.get('message'))}",
                field="teacher.source",
            )
        if len(arrays) != 1 or arrays[0].dtype != np.float32:
            raise self._fail(doing, protocol.ProtocolError("no float32 logits"))
        out = arrays[0]
        if out.ndim != 2 or len(out) != len(x) or self._classes not in (None, out.shape[1]):
            want = f"({len(x)}, {self._classes or 'K'})"
            raise TeacherLoadError(
                f"the teacher returned shape {tuple(out.shape)} for input {tuple(x.shape)}; "
                f"expected {want} logits",
                field="teacher.source",
            )
        self._classes = out.shape[1]
        return out

    def latency(self, input_shape: Sequence[int]) -> dict[str, Any] | None:
        """An ONNX teacher's latency (akd_core.latency's dict), timed in its process; else None."""
        if self._child is None or self._released or self.format != "onnx":
            return None
        deadline = time.monotonic() + self._policy.call_timeout_s
        try:
            request = {"op": "latency", "shape": [int(d) for d in input_shape]}
            protocol.send(self._child.fd_in, request, (), deadline)
            answer, _ = protocol.receive(self._child.fd_out, deadline, max_bytes=1 << 16)
        except (protocol.ChannelClosed, protocol.ChannelTimeout, protocol.ProtocolError) as exc:
            raise self._fail("timing the teacher", exc) from None
        if not answer.get("ok") or answer.get("latency") is None:
            return None
        try:  # the child is untrusted: only well-formed figures are passed on
            return latency_from_dict(answer["latency"]).to_dict()
        except ValueError as exc:
            log.warning("the teacher process sent malformed latency figures: %s", exc)
            return None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) float32 logits on x's device."""
        arr = x.detach().cpu().numpy()
        return torch.from_numpy(self.logits_for(arr, max(1, len(arr)))).to(x.device)

    def release(self) -> None:
        """Stop the teacher process and remove its working directory."""
        self._child, self._released = None, True
        self._stop()


def _parse_hello(
    hello: dict[str, Any],
) -> tuple[int | None, OnnxInput | None, dict[str, str]]:
    """Parameter count, declared ONNX input and sandbox layers from the child's first answer."""
    params, inp, layers = hello.get("params"), hello.get("declared_input"), hello.get("layers")
    try:
        if not (params is None or isinstance(params, int)) or not isinstance(layers, dict):
            raise TypeError
        declared = None
        if inp is not None:
            name, shape, onnx_type = inp
            dims = tuple(d if isinstance(d, int | None) else str(d) for d in shape)
            declared = OnnxInput(str(name), dims, str(onnx_type))
    except (TypeError, ValueError) as exc:
        raise protocol.ProtocolError("malformed first answer") from exc
    return params, declared, {str(k): str(v) for k, v in layers.items()}


def _parse_declared(value: object) -> dict[str, list[float]] | None:
    """The teacher's declared mean/std from the child (untrusted: re-checked, bounded)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise protocol.ProtocolError("malformed first answer")
    # The child parsed it from metadata text; parsing the same lists again applies every bound.
    return declared_mean_std({k: json.dumps(value.get(k)) for k in ("mean", "std")})


def _text(value: object, limit: int = 500) -> str:
    """A message from the child, bounded (it is untrusted)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def prestart(policy: SandboxPolicy | None = None, runtime: Runtime = "torch") -> None:
    """Start the first teacher process of `runtime` ahead (e.g. when a worker process starts)."""
    policy = policy or SandboxPolicy()
    prestart_child(policy.workdir_root, policy.uid, policy.gid, runtime)


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
    child = take_child(
        policy.workdir_root, policy.uid, policy.gid, policy.keep_warm, runtime_of(fmt)
    )
    try:
        name = child.install(path, policy.uid, policy.gid)
    except OSError as exc:
        child.stop()
        raise TeacherLoadError(
            f"{path.name!r} cannot be read: {exc.strerror}", field="teacher.source"
        ) from None
    request = {
        "format": fmt, "file": name, "fingerprint": fingerprint, "device": str(device),
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
        if hello.get("ok"):
            teacher = SandboxedTeacher(child, policy, hello, fingerprint, device)
            log.info("teacher process started: %s", teacher.sandbox_layers)
            return teacher
    except (protocol.ChannelClosed, protocol.ChannelTimeout, protocol.ProtocolError) as exc:
        if isinstance(exc, protocol.ChannelTimeout):
            how = f"did not load within {policy.start_timeout_s:g} s"
        elif isinstance(exc, protocol.ProtocolError):
            how = f"sent a malformed answer ({exc})"
        else:
            how = child.how_it_ended()
        log.warning("teacher process %s; its stderr ends with: %s", how, child.stderr_tail())
        child.stop()
        raise TeacherLoadError(
            f"the teacher process {how} while loading {path.name!r}", field="teacher.source"
        ) from None
    child.stop()  # it answered with the reason it could not load the file
    kind = hello.get("kind")
    error = _ERRORS.get(kind, TeacherLoadError) if isinstance(kind, str) else TeacherLoadError
    message = _text(hello.get("message"))
    if kind not in _ERRORS:
        message = f"{path.name!r} could not be loaded: {message}"
    field = hello.get("field")
    fits = isinstance(field, str) and _FIELD.fullmatch(field)
    raise error(message, field=field if fits else "teacher.source")
