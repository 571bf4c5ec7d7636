"""The sandboxed teacher process: reduce rights, load the teacher, answer logits requests.

Started by `akd_core.sandbox.proxy` with a minimal environment in a fresh working
directory that holds a copy of the teacher file. fd 0 and the original fd 1 carry the
protocol; fd 1 itself is pointed at stderr so that anything the model prints cannot
corrupt the answers. Imports (trusted code) happen before the rights are reduced.

An ONNX teacher's process never imports torch (numpy, onnx and onnxruntime serve it): a
child started for the "onnx" runtime imports only those while it waits, one started for
"torch" also imports torch, and either imports what its load request's format needs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from akd_core.errors import AKDError
from akd_core.latency import measure_latency
from akd_core.onnx_classifier import ONNX_FORMATS, ONNX_TEXT, OnnxModel, open_onnx_model
from akd_core.sandbox import protocol
from akd_core.sandbox.rights import Early, Limits, reduce_rights

if TYPE_CHECKING:
    from akd_core.teachers import Teacher


def _describe(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AKDError):
        return {"ok": False, "kind": type(exc).__name__, "message": exc.message, "field": exc.field}
    if isinstance(exc, MemoryError):
        return {"ok": False, "kind": "memory", "message": "out of memory in the sandbox"}
    # TorchScript puts its serialized traceback first and the cause on the last line.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = (lines[-1] if lines else "")[:300]
    return {"ok": False, "kind": "model", "message": f"{type(exc).__name__}: {text}"}


def _import_torch() -> None:
    """Import torch and its teachers' loaders (hf's own come with `preload`), rights still whole."""
    import torch  # noqa: F401

    import akd_core.teachers  # noqa: F401


def _load(cfg: dict[str, Any]) -> Teacher | OnnxModel:
    if cfg["format"] in ONNX_FORMATS:
        return open_onnx_model(cfg["format"], Path(cfg["file"]), cfg["device"])
    import torch

    from akd_core.spec import TeacherSpec
    from akd_core.teachers import open_teacher

    shape = cfg["input_shape"]
    return open_teacher(
        cfg["format"],
        Path(cfg["file"]),
        cfg["fingerprint"],
        torch.device(cfg["device"]),
        TeacherSpec(**cfg["spec"]),
        tuple(shape) if shape is not None else None,
        cfg["num_classes"],
        check_torchscript=cfg["check_torchscript"],
    )


def _latency(cfg: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """An ONNX teacher's onnxruntime latency, measured as akd_core.latency times the student."""
    if cfg["format"] != "onnx":  # torch teachers: no figure comparable with onnxruntime's
        return {"ok": True, "latency": None}
    try:
        shape = [int(d) for d in request["shape"]]
        return {"ok": True, "latency": measure_latency(Path(cfg["file"]), shape).to_dict()}
    except Exception as exc:  # e.g. a shape the model refuses: the parent reports no figure
        return _describe(exc)


def _hello(teacher: Teacher | OnnxModel, layers: dict[str, str]) -> dict[str, Any]:
    inp = teacher.declared_input
    return {
        "ok": True,
        "format": teacher.format,
        "params": teacher.param_count,
        "declared_input": None if inp is None else [inp.name, list(inp.shape), inp.onnx_type],
        "declared_preprocessing": getattr(teacher, "declared_preprocessing", None),
        "layers": layers,
        "execution_provider": getattr(teacher, "execution_provider", None),
    }


def serve(fd_in: int, fd_out: int, early: Early) -> None:
    """Read the load request, reduce rights, load, then answer until told to stop."""
    cfg, _ = protocol.receive(fd_in)
    if cfg.get("op") == "bye":
        return  # a spare that was never used
    if cfg.get("format") not in ONNX_FORMATS:  # imported here if this child was not started so
        _import_torch()
        import torch

        torch.set_num_threads(int(cfg["threads"]))
    if cfg.get("format") == "hf":  # trusted imports while the rights are still whole
        from akd_core.text.hf_teacher import preload

        preload(Path.cwd())
    elif cfg.get("format") == ONNX_TEXT:  # its module, imported while imports still work
        import akd_core.text.onnx_teacher  # noqa: F401
    layers = reduce_rights(
        int(cfg["uid"]), int(cfg["gid"]), Limits(**cfg["limits"]),
        cfg["device"].startswith("cuda"), int(cfg["parent_pid"]), early,
    )  # fmt: skip
    try:
        teacher = _load(cfg)
    except Exception as exc:  # any loader failure goes back as a message, never a traceback
        protocol.send(fd_out, _describe(exc))
        return
    protocol.send(fd_out, _hello(teacher, layers))
    while True:
        request, arrays = protocol.receive(fd_in)
        if request.get("op") == "latency":  # timed here: the worker never opens the file
            protocol.send(fd_out, _latency(cfg, request))
            continue
        if request.get("op") != "logits" or len(arrays) != 1:
            return  # "bye", or a parent that no longer speaks the protocol
        try:
            out = np.asarray(teacher.logits_for(arrays[0], int(request["batch_size"])), np.float32)
        except Exception as exc:  # the model's own error: the parent turns it into a message
            protocol.send(fd_out, _describe(exc))
            continue
        protocol.send(fd_out, {"ok": True}, (out,))


def main(early: Early, runtime: str = "onnx") -> None:
    """Entry point of the child process, after `isolate_early` (see sandbox.process.BOOT)."""
    if runtime == "torch":  # while it waits as a spare: a torch teacher's load then starts at once
        _import_torch()
    fd_out = os.dup(1)
    os.dup2(2, 1)  # print() and C-level writes to stdout now land in the stderr log
    sys.stdout = sys.stderr
    with contextlib.suppress(protocol.ChannelClosed, protocol.ProtocolError):
        serve(0, fd_out, early)  # ends when released, or when the parent goes away
    os._exit(0)  # skip interpreter teardown: nothing to flush, and it is faster
