"""A transformers sequence classifier as a Teacher (what the sandboxed child runs for format hf).

Loaded offline from a checked folder (`akd_core.text.hf_folder`): the Auto classes with
trust_remote_code=False, use_safetensors=True and local_files_only=True. It answers logits
for int64 token batches of shape (N, C, L): input_ids, attention_mask[, token_type_ids].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from akd_core.errors import TeacherLoadError, short_message
from akd_core.teachers import Teacher
from akd_core.text.batches import split_batch
from akd_core.text.hf_folder import SUPPORTED_FAMILIES
from akd_core.text.hf_quiet import transformers_quiet

FIELD = "teacher.source"


# The families the sandboxed child can load: their code is imported (and run once on a tiny
# model) before the child drops its rights, after which it can import nothing new.
SANDBOX_FAMILIES = SUPPORTED_FAMILIES
_TINY = {"vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
         "intermediate_size": 8, "max_position_embeddings": 16, "num_labels": 2}  # fmt: skip


def preload(scratch: Path) -> None:
    """Import and exercise the loading path of every sandbox family (trusted, tiny models)."""
    hf = transformers_quiet()

    for family in SANDBOX_FAMILIES:
        model = hf.AutoModelForSequenceClassification.from_config(
            hf.AutoConfig.for_model(family, **_TINY)
        )
        if family == SANDBOX_FAMILIES[0]:  # save and load once: from_pretrained's own imports
            model.save_pretrained(str(scratch / "warmup"), safe_serialization=True)
            model = load_hf_classifier(scratch / "warmup", torch.device("cpu"))
        with torch.no_grad():
            model(input_ids=torch.ones((1, 4), dtype=torch.int64),
                  attention_mask=torch.ones((1, 4), dtype=torch.int64))  # fmt: skip


def load_hf_classifier(folder: Path, device: torch.device) -> torch.nn.Module:
    """AutoModelForSequenceClassification from a local folder, offline, no remote code."""
    auto_model = transformers_quiet().AutoModelForSequenceClassification

    try:
        model = auto_model.from_pretrained(
            str(folder), trust_remote_code=False, use_safetensors=True, local_files_only=True
        )
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        raise TeacherLoadError(
            f"transformers cannot load the teacher folder: {short_message(exc)}", field=FIELD
        ) from exc
    return model.to(device).eval()


class HfTeacher(Teacher):
    """A transformers classifier fed stacked token tensors; logits in float32."""

    def __init__(self, fingerprint: str, folder: Path, device: torch.device) -> None:
        super().__init__("hf", fingerprint, device)
        self.model: torch.nn.Module | None = load_hf_classifier(folder, device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.param_count = sum(p.numel() for p in self.model.parameters())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) int64 tokens -> (B, K) float32 logits on x's device."""
        if self.model is None:
            raise RuntimeError("the teacher was released")
        if x.dtype != torch.int64 or x.ndim != 3:
            raise TeacherLoadError(
                f"a text teacher takes int64 token batches (B, C, L), got {x.dtype} "
                f"{tuple(x.shape)}",
                field=FIELD,
            )
        with torch.no_grad():
            out = self.model(**split_batch(x.to(self.device), trim=True))
        return out.logits.float().to(x.device)

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for (N, C, L) int64 tokens, `batch_size` rows at a time."""
        parts = [
            self.predict(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).numpy()
            for i in range(0, len(x), max(1, batch_size))
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def release(self) -> None:
        """Free the model's memory; the teacher cannot predict afterwards."""
        self.model = None
        super().release()
