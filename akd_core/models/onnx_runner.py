"""Running an ONNX classifier over a whole array in batches (shared by teachers and export)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

# ONNX element types a float image/feature array can be cast to without losing meaning.
_FLOAT_TYPES: dict[str, type[np.floating]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}


@dataclass(frozen=True)
class OnnxInput:
    """The single input of an ONNX classifier: name, declared shape (ints or names) and dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    onnx_type: str

    @property
    def fixed_batch(self) -> int | None:
        """The batch size when the model fixes it, else None (dynamic batch)."""
        first = self.shape[0] if self.shape else None
        return first if isinstance(first, int) and first > 0 else None

    def shape_text(self) -> str:
        """The declared shape as a person reads it, e.g. (batch, 3, 32, 32)."""
        dims = ["?" if d is None else str(d) for d in self.shape]
        return "(" + ", ".join(dims) + ")"


CUDA_PROVIDER = "CUDAExecutionProvider"


def session_providers(use_cuda: bool, device_id: int = 0) -> list[str | tuple[str, dict[str, int]]]:
    """onnxruntime providers in order: the CUDA one on GPU `device_id` first when asked and
    installed (onnxruntime-gpu), the CPU one always (it runs what CUDA cannot)."""
    providers: list[str | tuple[str, dict[str, int]]] = ["CPUExecutionProvider"]
    if use_cuda and CUDA_PROVIDER in ort.get_available_providers():
        # Without device_id every session opens on GPU 0, whichever card the job was given.
        providers.insert(0, (CUDA_PROVIDER, {"device_id": device_id}))
    return providers


def make_session(path: Path, use_cuda: bool = False, device_id: int = 0) -> ort.InferenceSession:
    """An onnxruntime session on CPU, or on CUDA GPU `device_id` first when asked and available."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise for users
    return ort.InferenceSession(
        str(path), sess_options=options, providers=session_providers(use_cuda, device_id)
    )


def execution_provider(session: ort.InferenceSession) -> str:
    """The provider that runs the session's nodes first, e.g. CUDAExecutionProvider."""
    return str(session.get_providers()[0])


def single_input(session: ort.InferenceSession) -> OnnxInput:
    """Describe the model's one input (callers check there is exactly one)."""
    node = session.get_inputs()[0]
    return OnnxInput(node.name, tuple(node.shape), node.type)


def numpy_dtype(inp: OnnxInput) -> type[np.floating] | None:
    """The numpy dtype to feed `inp`, or None when it is not a float tensor."""
    return _FLOAT_TYPES.get(inp.onnx_type)


def run_batched(session: ort.InferenceSession, x: np.ndarray, batch_size: int) -> np.ndarray:
    """First output of `session` for every row of `x`, as float32, fed `batch_size` rows at a time.

    A model whose batch axis is fixed to N is fed chunks of exactly N rows; the last chunk
    is padded with zeros and the padding rows are dropped from the result.
    """
    inp = single_input(session)
    # Teachers take floats; a raw-input student takes uint8 pixels as they are.
    dtype = numpy_dtype(inp) or (np.uint8 if inp.onnx_type == "tensor(uint8)" else np.float32)
    step = inp.fixed_batch or max(1, int(batch_size))
    outputs: list[np.ndarray] = []
    for start in range(0, len(x), step):
        chunk = np.ascontiguousarray(x[start : start + step], dtype=dtype)
        rows = len(chunk)
        if inp.fixed_batch and rows < step:
            pad = np.zeros((step - rows, *chunk.shape[1:]), dtype=dtype)
            chunk = np.concatenate([chunk, pad])
        out = session.run(None, {inp.name: chunk})[0]
        outputs.append(np.asarray(out, dtype=np.float32)[:rows])
    if not outputs:
        last = session.get_outputs()[0].shape[-1:]
        classes = last[0] if last and isinstance(last[0], int) else 0
        return np.zeros((0, classes), dtype=np.float32)
    return np.concatenate(outputs)
