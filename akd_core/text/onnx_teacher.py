"""An ONNX text classifier as a Teacher (what the sandboxed child runs for an `onnx` text folder).

The folder holds one .onnx file whose inputs are input_ids, attention_mask and optionally
token_type_ids (int64 or int32, shape (batch, sequence)), beside the tokenizer files. It
answers (N, K) float32 logits for the stacked int64 token batches (N, C, L) of the text
pipeline, each batch trimmed to its own longest row as the torch teachers are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from akd_core.errors import TeacherLoadError
from akd_core.models.onnx_runner import execution_provider, make_session
from akd_core.teacher_check import short_message
from akd_core.teachers import Teacher, read_onnx_graph
from akd_core.text.batches import CHANNELS, split_batch

FIELD = "teacher.source"
REQUIRED = CHANNELS[:2]  # input_ids, attention_mask
_INT_TYPES: dict[str, type[np.integer]] = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def text_feed(x: np.ndarray, names: dict[str, type[np.integer]]) -> dict[str, np.ndarray]:
    """The session's feed from (B, C, L) tokens: absent token_type_ids are zeros."""
    parts = split_batch(torch.from_numpy(np.ascontiguousarray(x)), trim=True)
    feed = {}
    for name, dtype in names.items():
        arr = parts[name].numpy() if name in parts else np.zeros_like(parts["input_ids"].numpy())
        feed[name] = arr.astype(dtype, copy=False)
    return feed


class OnnxTextTeacher(Teacher):
    """An ONNX file taking input_ids / attention_mask[/ token_type_ids], run by onnxruntime."""

    def __init__(self, fingerprint: str, path: Path, device: torch.device) -> None:
        super().__init__("onnx", fingerprint, device)
        inputs, self.param_count, _ = read_onnx_graph(path)
        unknown = [n for n in inputs if n not in CHANNELS]
        if unknown or any(n not in inputs for n in REQUIRED):
            raise TeacherLoadError(
                f"the ONNX text teacher has inputs {inputs}; a text teacher takes "
                f"{', '.join(REQUIRED)} and optionally token_type_ids (what "
                "torch.onnx.export of a transformers classifier with those input_names gives)",
                field=FIELD,
            )
        try:
            self._session = make_session(
                path, use_cuda=device.type == "cuda", device_id=device.index or 0
            )
        except Exception as exc:  # onnxruntime's errors have no common public base class
            raise TeacherLoadError(
                f"onnxruntime cannot load {path.name!r}: {short_message(exc)}", field=FIELD
            ) from exc
        self.execution_provider = execution_provider(self._session)
        self._names: dict[str, type[np.integer]] = {}
        for node in self._session.get_inputs():
            if node.type not in _INT_TYPES:
                raise TeacherLoadError(
                    f"the ONNX text teacher's input {node.name!r} is {node.type}; token inputs "
                    "are tensor(int64) or tensor(int32)",
                    field=FIELD,
                )
            self._names[node.name] = _INT_TYPES[node.type]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) int64 tokens -> (B, K) float32 logits on x's device."""
        return torch.from_numpy(self.logits_for(x.cpu().numpy(), max(1, len(x)))).to(x.device)

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for (N, C, L) int64 tokens, `batch_size` rows at a time."""
        if self._session is None:
            raise RuntimeError("the teacher was released")
        if x.dtype != np.int64 or x.ndim != 3:
            raise TeacherLoadError(
                f"a text teacher takes int64 token batches (N, C, L), got {x.dtype} {x.shape}",
                field=FIELD,
            )
        parts = [
            np.asarray(self._session.run(None, text_feed(x[i : i + batch_size], self._names))[0])
            for i in range(0, len(x), max(1, batch_size))
        ]
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        out = np.concatenate(parts).astype(np.float32, copy=False)
        if out.ndim != 2:
            raise TeacherLoadError(
                f"the ONNX text teacher's first output has shape {out.shape}; a classifier's "
                "logits are (batch, classes)",
                field=FIELD,
            )
        return out

    def release(self) -> None:
        """Free the session; the teacher cannot predict afterwards."""
        self._session = None
        super().release()
