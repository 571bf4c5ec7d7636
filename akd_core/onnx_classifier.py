"""ONNX teachers without torch: what the sandboxed teacher process runs for an ONNX teacher.

numpy, onnx and onnxruntime only: a teacher process for an ONNX file never imports torch
(seconds of start and about 250 MB per process). `teachers.OnnxTeacher` adapts these
models to torch tensors for in-process use; the sandbox's parent does the same by pipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from akd_core.data.teacher_normalize import declared_mean_std
from akd_core.errors import TeacherLoadError, short_message
from akd_core.models.onnx_runner import (
    OnnxInput,
    execution_provider,
    make_session,
    numpy_dtype,
    run_batched,
    single_input,
)

# The sandbox's name for an ONNX text teacher: a checked folder (one .onnx file + tokenizer).
ONNX_TEXT = "onnx-text"
ONNX_FORMATS = frozenset({"onnx", ONNX_TEXT})  # the formats served without torch
FIELD = "teacher.source"


def read_onnx_graph(path: Path) -> tuple[list[str], int, dict[str, str]]:
    """An ONNX teacher's graph inputs, parameter count and metadata; refuses external data."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on corrupt bytes
        raise TeacherLoadError(
            f"{path.name!r} cannot be parsed as ONNX: {short_message(exc)}", field=FIELD
        ) from exc
    # External data would make onnxruntime read other files by a path the upload chose.
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise TeacherLoadError(
            f"{path.name!r} keeps its weights in external .data files; export it as one "
            "self-contained file (torch.onnx.export(..., external_data=False))",
            field=FIELD,
        )
    init_names = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in init_names]
    params = int(sum(np.prod(t.dims) for t in proto.graph.initializer))
    return inputs, params, {p.key: p.value for p in proto.metadata_props}


def open_session(path: Path, device: str) -> ort.InferenceSession:
    """An onnxruntime session for `device` ("cpu", "cuda" or "cuda:N"); a refusal names the file."""
    cuda, _, index = device.partition(":")
    try:
        # cuda:N is the job's card; a pinned worker's one card is "cuda", i.e. index 0.
        return make_session(path, use_cuda=cuda == "cuda", device_id=int(index or 0))
    except Exception as exc:  # onnxruntime's errors have no common public base class
        raise TeacherLoadError(
            f"onnxruntime cannot load {path.name!r}: {short_message(exc)}", field=FIELD
        ) from exc


class OnnxModel:
    """A loaded ONNX teacher: its facts for the report, and (N, K) float32 logits for arrays."""

    format = "onnx"
    declared_input: OnnxInput | None = None  # what an image/feature model says it takes
    declared_preprocessing: dict[str, list[float]] | None = None  # {"mean", "std"} metadata
    param_count: int | None = None

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session: ort.InferenceSession | None = session
        self.execution_provider = execution_provider(session)

    def session(self) -> ort.InferenceSession:
        """The live session; a released model cannot predict."""
        if self._session is None:
            raise RuntimeError("the teacher was released")
        return self._session

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for a whole array, computed `batch_size` rows at a time."""
        raise NotImplementedError

    def release(self) -> None:
        """Free the session; the model cannot predict afterwards."""
        self._session = None


class OnnxClassifier(OnnxModel):
    """A one-input ONNX classifier of float samples (images, features, signals)."""

    def __init__(self, path: Path, device: str) -> None:
        inputs, params, metadata = read_onnx_graph(path)
        declared = declared_mean_std(metadata)
        if len(inputs) != 1:
            raise TeacherLoadError(
                f"the ONNX teacher has {len(inputs)} inputs ({', '.join(inputs) or 'none'}); "
                "exactly one input (the batch of samples) is supported"
                + (
                    "; an ONNX text teacher (input_ids, attention_mask) distils into a text "
                    "student: set student.arch to 'bert'"
                    if "input_ids" in inputs
                    else ""
                ),
                field=FIELD,
            )
        super().__init__(open_session(path, device))
        self.param_count, self.declared_preprocessing = params, declared
        inp = self.declared_input = single_input(self.session())
        if numpy_dtype(inp) is None:
            raise TeacherLoadError(
                f"the ONNX teacher's input {inp.name!r} is {inp.onnx_type}; only float inputs "
                "(images, features, signals) are supported",
                field=FIELD,
            )

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for a whole array, computed `batch_size` rows at a time."""
        return run_batched(self.session(), x, batch_size)


def open_onnx_model(fmt: str, path: Path, device: str) -> OnnxModel:
    """Load an ONNX teacher of format `fmt` (one of ONNX_FORMATS) from `path`."""
    if fmt == ONNX_TEXT:
        from akd_core.text.onnx_teacher import OnnxTextClassifier  # text's own module

        return OnnxTextClassifier(next(path.glob("*.onnx")), device)
    return OnnxClassifier(path, device)
