"""The teacher's tokenizer (read from its tokenizer.json, no code) and token arrays (N, C, L)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from akd_core.errors import TeacherLoadError, short_message
from akd_core.text.batches import CHANNELS

ENCODE_CHUNK = 4096  # rows tokenised per call (bounds the lists held at once)


def load_tokenizer(root: Path) -> Any:
    """The fast tokenizer of a checked teacher folder, offline, never with remote code."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            str(root), local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:  # transformers raises many types for a bad tokenizer folder
        raise TeacherLoadError(
            f"the teacher's tokenizer cannot be loaded: {short_message(exc)}",
            field="teacher.source",
        ) from exc
    if not getattr(tok, "is_fast", False):
        raise TeacherLoadError(
            "the teacher's tokenizer is not a fast (tokenizers) tokenizer; save one with "
            "tokenizer.save_pretrained(dir) so that tokenizer.json is written",
            field="teacher.source",
        )
    if tok.pad_token_id is None:
        raise TeacherLoadError(
            "the teacher's tokenizer has no padding token; set tokenizer.pad_token and save it",
            field="teacher.source",
        )
    tok.padding_side = "right"  # batches.split_batch trims trailing padding
    return tok


def channels(tok: Any) -> tuple[str, ...]:
    """The model inputs the tokenizer makes: input_ids, attention_mask[, token_type_ids]."""
    return CHANNELS if "token_type_ids" in tok.model_input_names else CHANNELS[:2]


def encode(tok: Any, texts: list[str], pairs: list[str] | None, max_length: int) -> np.ndarray:
    """(N, C, L) int64 tokens, truncated to max_length, right-padded to the split's longest row."""
    names = channels(tok)
    rows: dict[str, list[list[int]]] = {n: [] for n in names}
    for i in range(0, len(texts), ENCODE_CHUNK):
        enc = tok(
            texts[i : i + ENCODE_CHUNK],
            pairs[i : i + ENCODE_CHUNK] if pairs is not None else None,
            truncation=True,
            max_length=max_length,
            return_token_type_ids="token_type_ids" in names,
            return_attention_mask=True,
        )
        for n in names:
            rows[n].extend(enc[n])
    longest = max((len(r) for r in rows["input_ids"]), default=1)
    out = np.zeros((len(texts), len(names), longest), np.int64)
    out[:, 0, :] = tok.pad_token_id
    for c, n in enumerate(names):
        for j, r in enumerate(rows[n]):
            out[j, c, : len(r)] = r
    return out
