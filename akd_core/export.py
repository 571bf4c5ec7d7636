"""ONNX export of a trained student, and the checks run on the exported file.

Two exporters ship with torch 2.x: the TorchScript-based one (`dynamo=False`) and the
torch.export-based one (`dynamo=True`). Measured on this project's students
(bench/export_cost.py, docs/benchmarks.md) the TorchScript-based one is 10x to 50x
cheaper and gives the same logits, so it is tried first; parity with the PyTorch model
on a probe batch is the arbiter: an exporter that fails, or whose graph disagrees with
PyTorch, is followed by the other. The exporter used is recorded. Files are always one
self-contained .onnx (no external .data file), written to a temporary name in the target
folder and renamed, so a reader never sees a half-written model.
"""

from __future__ import annotations

import copy
import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from akd_core.errors import TrainingError
from akd_core.fileio import atomic_write
from akd_core.models.onnx_runner import make_session, run_batched

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Example batch for tracing: 2, because torch.export specialises sizes 0 and 1.
_EXAMPLE_BATCH = 2
Exporter = Literal["torchscript", "dynamo"]
# Cheapest first (bench/export_cost.py); the other is the fallback.
EXPORTER_ORDER: tuple[Exporter, ...] = ("torchscript", "dynamo")
# Parity a graph must hold on the probe batch: |onnx - torch| <= ATOL + RTOL * max|torch|.
PARITY_ATOL, PARITY_RTOL = 1e-4, 1e-4

log = logging.getLogger(__name__)
# The exporter warns at every export that torchvision (never installed here) has no ops to register.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def _dynamo_proto(
    model: nn.Module, example: torch.Tensor, opset: int, input_name: str
) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecation noise
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[input_name],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # only when f= is given, which it is not here
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _torchscript_proto(
    model: nn.Module, example: torch.Tensor, opset: int, input_name: str
) -> onnx.ModelProto:
    buf: Any = io.BytesIO()  # the legacy exporter writes to file objects too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation warning is expected here
        torch.onnx.export(
            model,
            (example,),
            buf,
            input_names=[input_name],
            output_names=[OUTPUT_NAME],
            dynamic_axes={input_name: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def _set_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)


@dataclass(frozen=True)
class ExportAttempt:
    """One exporter tried: how long it took, and why it was not used (None: it was used)."""

    exporter: Exporter
    seconds: float
    rejected: str | None = None
    parity_max_abs_diff: float | None = None


@dataclass(frozen=True)
class ExportRecord:
    """The written file and the exporters tried in order (the last one was used)."""

    path: Path
    attempts: tuple[ExportAttempt, ...] = field(default_factory=tuple)
    # The CPU session the probe ran on (the written graph, default threads), for the caller
    # to measure accuracy on instead of opening the same file again; None without a probe.
    session: Any = field(default=None, compare=False, repr=False)

    @property
    def exporter(self) -> Exporter:
        """The exporter whose graph was written."""
        return self.attempts[-1].exporter

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"exporter", "seconds", "attempts": [...]} for report.json."""
        return {
            "exporter": self.exporter,
            "seconds": sum(a.seconds for a in self.attempts),
            "attempts": [a.__dict__ for a in self.attempts],
        }


def _build(
    which: Exporter, model: nn.Module, example: torch.Tensor, opset: int, name: str
) -> onnx.ModelProto:
    # Looked up at call time, so tests can replace one exporter by a failing one.
    builder = _dynamo_proto if which == "dynamo" else _torchscript_proto
    return builder(model, example, opset, name)


def _probe_diff(
    proto: onnx.ModelProto, model: nn.Module, probe: np.ndarray
) -> tuple[float, bool, Any]:
    """(max |onnx - torch| on the probe, whether it is within tolerance with equal argmax,
    the session it ran on)."""
    session = make_session_from_bytes(proto.SerializeToString())
    onnx_out = run_batched(session, probe, len(probe))
    torch_out = _torch_logits(model, probe, len(probe))
    diff = float(np.max(np.abs(onnx_out - torch_out)))
    bound = PARITY_ATOL + PARITY_RTOL * float(np.max(np.abs(torch_out)))
    same_class = bool(np.all(onnx_out.argmax(1) == torch_out.argmax(1)))
    return diff, diff <= bound and same_class, session


def make_session_from_bytes(model_bytes: bytes) -> Any:
    """A CPU onnxruntime session on a serialized model (no file needed)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )


def _saver(proto: onnx.ModelProto) -> Callable[[Path], None]:
    return lambda tmp: onnx.save_model(proto, str(tmp))


def export_checked(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: Path,
    metadata: dict[str, str],
    opset: int = 18,
    *,
    input_name: str = INPUT_NAME,
    input_dtype: torch.dtype = torch.float32,
    probe: np.ndarray | None = None,
    exporters: Sequence[Exporter] = EXPORTER_ORDER,
) -> ExportRecord:
    """Write `model` as one self-contained ONNX file; try `exporters` in order.

    An exporter is used when it produces a valid graph that matches PyTorch on `probe`
    (when given); otherwise the next one is tried. Raises TrainingError naming every
    exporter's failure when none succeeds.
    """
    bad = {k: v for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise TypeError(f"ONNX metadata keys and values must be strings; got {bad!r}")
    # A CPU copy in eval mode: the caller's model keeps its device, mode and weights.
    cpu_model = copy.deepcopy(model).cpu().eval()
    example = torch.zeros((_EXAMPLE_BATCH, *input_shape), dtype=input_dtype)
    attempts: list[ExportAttempt] = []
    for which in exporters:
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                proto = _build(which, cpu_model, example, opset, input_name)
            _set_metadata(proto, metadata)
            onnx.checker.check_model(proto)
            diff, held, session = (
                (None, True, None)
                if probe is None or not len(probe)
                else _probe_diff(proto, cpu_model, probe)
            )
        except Exception as exc:  # exporter failures come in many types
            attempts.append(ExportAttempt(which, time.perf_counter() - t0, f"failed: {exc}"[:300]))
            log.warning("the %s exporter could not export the model: %s", which, exc)
            continue
        seconds = time.perf_counter() - t0
        if not held:
            attempts.append(ExportAttempt(which, seconds, "parity failed on the probe batch", diff))
            log.warning("the %s exporter's graph differs from PyTorch (max |diff| %s)", which, diff)
            continue
        attempts.append(ExportAttempt(which, seconds, None, diff))
        written = atomic_write(path, _saver(proto))
        return ExportRecord(written, tuple(attempts), session)
    tried = "; ".join(f"{a.exporter}: {a.rejected}" for a in attempts)
    raise TrainingError(f"no ONNX exporter reproduced the trained student ({tried})")


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: Path,
    metadata: dict[str, str],
    opset: int = 18,
    *,
    input_name: str = INPUT_NAME,
    input_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write `model` as one self-contained ONNX file with a dynamic batch axis and metadata.

    `input_name` and `input_dtype` name and type the graph's input (the teacher's name, and
    uint8 for a raw-input image student).
    """
    return export_checked(
        model, input_shape, path, metadata, opset, input_name=input_name, input_dtype=input_dtype
    ).path


def _torch_logits(model: nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            # Integer inputs (raw uint8 pixels) stay integers: the model casts them itself.
            dtype = x.dtype if x.dtype.kind in "ui" else np.float32
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=dtype))
            parts.append(model(xb).float().numpy())
    return np.concatenate(parts)


def _on_cpu_in_eval(model: nn.Module) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return not any(m.training for m in model.modules()) and all(
        t.device.type == "cpu" for t in tensors
    )


def onnx_parity(
    path: Path,
    model: nn.Module,
    x: np.ndarray,
    batch_size: int = 256,
    onnx_out: np.ndarray | None = None,
) -> dict:
    """Compare onnxruntime with the torch model on CPU: max_abs_diff and argmax_agreement.

    `onnx_out`: the file's logits on `x` when already computed (they are not run again).
    """
    if not len(x):
        return {"max_abs_diff": 0.0, "argmax_agreement": 1.0}
    # A CPU copy in eval mode only when needed: the caller's model keeps its device and mode.
    cpu_model = model if _on_cpu_in_eval(model) else copy.deepcopy(model).cpu().eval()
    if onnx_out is None:
        onnx_out = run_batched(make_session(path), x, batch_size)
    torch_out = _torch_logits(cpu_model, x, batch_size)
    return {
        "max_abs_diff": float(np.max(np.abs(onnx_out - torch_out))),
        "argmax_agreement": float(np.mean(onnx_out.argmax(1) == torch_out.argmax(1))),
    }


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of the ONNX model on (x, y), run on CPU."""
    if not len(x):
        return 0.0
    logits = run_batched(make_session(path), x, batch_size)
    return float(np.mean(logits.argmax(1) == np.asarray(y)))


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
