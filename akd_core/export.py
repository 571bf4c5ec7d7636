"""ONNX export of a trained student, and the checks run on the exported file.

Export uses the torch.export-based exporter (`dynamo=True`, the maintained one) with
`external_data=False`, so the file is self-contained. If torch.export cannot capture a
model, the TorchScript-based exporter (still shipped in torch 2.x) is tried once.
Files are written to a temporary name in the target folder and renamed, so a reader
never sees a half-written model.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from akd_core.fileio import atomic_write
from akd_core.models.onnx_runner import make_session, run_batched

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Example batch for tracing: 2, because torch.export specialises sizes 0 and 1.
_EXAMPLE_BATCH = 2

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
    bad = {k: v for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise TypeError(f"ONNX metadata keys and values must be strings; got {bad!r}")
    # A CPU copy in eval mode: the caller's model keeps its device, mode and weights.
    cpu_model = copy.deepcopy(model).cpu().eval()
    example = torch.zeros((_EXAMPLE_BATCH, *input_shape), dtype=input_dtype)
    with torch.no_grad():
        try:
            proto = _dynamo_proto(cpu_model, example, opset, input_name)
        except Exception as exc:  # torch.export failures come in many types
            log.warning(
                "torch.export could not capture the model (%s); using the TorchScript exporter", exc
            )
            proto = _torchscript_proto(cpu_model, example, opset, input_name)
    _set_metadata(proto, metadata)
    onnx.checker.check_model(proto)
    return atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp)))


def _torch_logits(model: nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            # Integer inputs (raw uint8 pixels) stay integers: the model casts them itself.
            dtype = x.dtype if x.dtype.kind in "ui" else np.float32
            xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=dtype))
            parts.append(model(xb).float().numpy())
    return np.concatenate(parts)


def onnx_parity(path: Path, model: nn.Module, x: np.ndarray, batch_size: int = 256) -> dict:
    """Compare onnxruntime with the torch model on CPU: max_abs_diff and argmax_agreement."""
    if not len(x):
        return {"max_abs_diff": 0.0, "argmax_agreement": 1.0}
    cpu_model = copy.deepcopy(model).cpu().eval()
    onnx_out = run_batched(make_session(path), x, batch_size)
    torch_out = _torch_logits(cpu_model, x, batch_size)
    return {
        "max_abs_diff": float(np.max(np.abs(onnx_out - torch_out))),
        "argmax_agreement": float(np.mean(onnx_out.argmax(1) == torch_out.argmax(1))),
    }


@contextlib.contextmanager
def _root_logging_at(level: int):
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(level, before))
    try:
        yield
    finally:
        root.setLevel(before)


def quantize_int8(src: Path, dst: Path) -> Path:
    """Write an INT8 dynamically quantized copy of `src` to `dst`, keeping its metadata."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path) -> None:
        # Unsigned 8-bit weights: onnxruntime's CPU ConvInteger kernel is several times
        # faster with them than with signed ones, at the same size and similar error.
        # Its advice to run shape pre-processing first goes to the root logger at WARNING;
        # it does not apply to dynamic quantization of these models, so keep it off the CLI.
        with _root_logging_at(logging.ERROR):
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QUInt8)
        # quantize_dynamic drops metadata_props; the INT8 file must describe itself too.
        proto = onnx.load(str(tmp))
        _set_metadata(proto, read_metadata(src))
        onnx.save_model(proto, str(tmp))

    return atomic_write(dst, write)


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of the ONNX model on (x, y), run on CPU."""
    if not len(x):
        return 0.0
    logits = run_batched(make_session(path), x, batch_size)
    return float(np.mean(logits.argmax(1) == np.asarray(y)))


def onnx_latency_ms(
    path: Path, input_shape: tuple[int, ...], batch_size: int = 1, repeats: int = 50
) -> float:
    """Median wall time in milliseconds of one CPU inference of `batch_size` samples."""
    session = make_session(path)
    inp = session.get_inputs()[0]
    rng = np.random.default_rng(0)
    if inp.type == "tensor(uint8)":  # a raw-input student: pixels
        x = rng.integers(0, 256, (batch_size, *input_shape), dtype=np.uint8)
    else:
        x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    name = inp.name
    for _ in range(3):  # warm-up: the first runs allocate and pick kernels
        session.run(None, {name: x})
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(times))


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file as a dict."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
