"""An ONNX text classifier without torch (what the sandboxed child runs for an `onnx` text folder).

The folder holds one .onnx file whose inputs are input_ids, attention_mask and optionally
token_type_ids (int64 or int32, shape (batch, sequence)), beside the tokenizer files. It
answers (N, K) float32 logits for the stacked int64 token batches (N, C, L) of the text
pipeline, each batch trimmed to its own longest row as the torch teachers are;
`teachers.OnnxTeacher` adapts it to torch tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from akd_core.errors import TeacherLoadError
from akd_core.onnx_classifier import FIELD, OnnxModel, open_session, read_onnx_graph
from akd_core.text.batches import CHANNELS, split_batch

REQUIRED = CHANNELS[:2]  # input_ids, attention_mask
_INT_TYPES: dict[str, type[np.integer]] = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def text_feed(x: np.ndarray, names: dict[str, type[np.integer]]) -> dict[str, np.ndarray]:
    """The session's feed from (B, C, L) tokens: absent token_type_ids are zeros."""
    parts = split_batch(np.ascontiguousarray(x), trim=True)
    feed = {}
    for name, dtype in names.items():
        arr = parts[name] if name in parts else np.zeros_like(parts["input_ids"])
        feed[name] = arr.astype(dtype, copy=False)
    return feed


class OnnxTextClassifier(OnnxModel):
    """An ONNX file taking input_ids / attention_mask[/ token_type_ids], run by onnxruntime."""

    def __init__(self, path: Path, device: str) -> None:
        inputs, params, _ = read_onnx_graph(path)
        unknown = [n for n in inputs if n not in CHANNELS]
        if unknown or any(n not in inputs for n in REQUIRED):
            raise TeacherLoadError(
                f"the ONNX text teacher has inputs {inputs}; a text teacher takes "
                f"{', '.join(REQUIRED)} and optionally token_type_ids (what "
                "torch.onnx.export of a transformers classifier with those input_names gives)",
                field=FIELD,
            )
        super().__init__(open_session(path, device))
        self.param_count = params
        self._names: dict[str, type[np.integer]] = {}
        for node in self.session().get_inputs():
            if node.type not in _INT_TYPES:
                raise TeacherLoadError(
                    f"the ONNX text teacher's input {node.name!r} is {node.type}; token inputs "
                    "are tensor(int64) or tensor(int32)",
                    field=FIELD,
                )
            self._names[node.name] = _INT_TYPES[node.type]

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for (N, C, L) int64 tokens, `batch_size` rows at a time."""
        session = self.session()
        if x.dtype != np.int64 or x.ndim != 3:
            raise TeacherLoadError(
                f"a text teacher takes int64 token batches (N, C, L), got {x.dtype} {x.shape}",
                field=FIELD,
            )
        parts = [
            np.asarray(session.run(None, text_feed(x[i : i + batch_size], self._names))[0])
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
