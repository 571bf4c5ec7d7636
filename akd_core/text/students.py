"""Text students: `bert` (random init) and `shrink-teacher` (the teacher's embeddings and every
k-th layer, as DistilBERT was initialised), wrapped to take the stacked token batch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from akd_core.errors import SpecError, TeacherLoadError
from akd_core.text.batches import split_batch
from akd_core.text.hf_folder import SUPPORTED_FAMILIES, HfFolder
from akd_core.text.hf_quiet import transformers_quiet
from akd_core.text.names import SHRINK_DEFAULT_LAYERS, bert_dropout, bert_options

# Families whose layers are `<prefix>.encoder.layer.<n>.` and config says num_hidden_layers.
SHRINKABLE = SUPPORTED_FAMILIES
OFFSET_FAMILIES = ("roberta", "xlm-roberta", "camembert")  # positions start after the pad id
_LAYER = re.compile(r"(\.encoder\.layer\.)(\d+)(\.)")


class TokenClassifier(nn.Module):
    """A transformers classifier whose forward takes (B, C, L) int64 tokens, giving (B, K) logits."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf: Any = hf  # a transformers PreTrainedModel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hf(**split_batch(x, trim=True)).logits


def usable_positions(config: Any) -> int:
    """The longest sequence a model of this config embeds (RoBERTa offsets by pad id + 1)."""
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    offset = int(config.pad_token_id or 0) + 1 if config.model_type in OFFSET_FAMILIES else 0
    return positions - offset


def _labels(classes: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(classes),
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
    }


def _bert(teacher: HfFolder, options: dict[str, Any], classes: list[str], pad_id: int,
          uses_types: bool, max_length: int) -> nn.Module:  # fmt: skip
    from transformers import BertConfig, BertForSequenceClassification

    o, p = bert_options(options), bert_dropout(options)
    config = BertConfig(
        vocab_size=int(teacher.config["vocab_size"]),
        hidden_size=o["hidden"],
        num_hidden_layers=o["layers"],
        num_attention_heads=o["heads"],
        intermediate_size=o["intermediate"],
        hidden_dropout_prob=p,
        attention_probs_dropout_prob=p,
        # The teacher's positions: the student takes whatever length the teacher takes.
        max_position_embeddings=max(
            int(teacher.config.get("max_position_embeddings", 0)), max_length
        ),
        type_vocab_size=2 if uses_types else 1,
        pad_token_id=pad_id,
        **_labels(classes),
    )
    return BertForSequenceClassification(config)


def shrink_layers(teacher_layers: int, layers: int) -> list[int]:
    """Teacher layer copied into each student layer: every k-th, k = teacher // student."""
    k = teacher_layers // layers
    return [i * k for i in range(layers)]


def _teacher_state(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file  # raw tensors: no code, no pickle

    state: dict[str, torch.Tensor] = {}
    for f in sorted(root.glob("*.safetensors")):
        state.update(load_file(str(f)))
    return state


def _shrink(teacher: HfFolder, options: dict[str, Any], classes: list[str]) -> nn.Module:
    hf = transformers_quiet()

    for key in options:
        if key != "layers":
            raise SpecError(f"unknown option {key!r} for architecture 'shrink-teacher'; "
                            "accepted options: layers", field="student.options")  # fmt: skip
    if teacher.model_type not in SHRINKABLE:
        raise SpecError(
            f"shrink-teacher copies layers of {', '.join(SHRINKABLE)} models; the teacher is "
            f"{teacher.model_type!r}: use student.arch 'bert' instead",
            field="student.arch",
        )
    n_t = int(teacher.config.get("num_hidden_layers", 0))
    layers = options.get("layers", min(SHRINK_DEFAULT_LAYERS, n_t))
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= n_t:
        raise SpecError(f"option 'layers': got {layers!r}; expected an integer from 1 to the "
                        f"teacher's {n_t} layers", field="student.options.layers")  # fmt: skip
    cfg = {k: v for k, v in teacher.config.items() if k not in ("model_type", "architectures")}
    cfg.update(num_hidden_layers=layers, **_labels(classes))
    config = hf.AutoConfig.for_model(teacher.model_type, **cfg)
    student = hf.AutoModelForSequenceClassification.from_config(config)
    picked = shrink_layers(n_t, layers)
    source = {j: i for i, j in enumerate(picked)}
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in _teacher_state(teacher.root).items():
        m = _LAYER.search(name)
        if m is None:
            mapped[name] = tensor.float()
        elif int(m.group(2)) in source:
            new = f"{m.group(1)}{source[int(m.group(2))]}{m.group(3)}"
            mapped[name[: m.start()] + new + name[m.end() :]] = tensor.float()
    missing, _ = student.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing:
        raise TeacherLoadError(
            f"the teacher's weights do not cover a {teacher.model_type} model of its config "
            f"(missing {missing[:3]}); save it with save_pretrained",
            field="teacher.source",
        )
    return student


def build_text_student(arch: str, options: dict[str, Any], teacher: HfFolder,
                       classes: list[str], pad_id: int, uses_types: bool,
                       max_length: int) -> TokenClassifier:  # fmt: skip
    """The student named by student.arch, sharing the teacher's vocabulary, wrapped for batches."""
    if arch == "bert":
        hf = _bert(teacher, options, classes, pad_id, uses_types, max_length)
    elif arch == "shrink-teacher":
        hf = _shrink(teacher, options, classes)
    else:
        raise SpecError(f"{arch!r} is not a text student; use bert or shrink-teacher",
                        field="student.arch")  # fmt: skip
    return TokenClassifier(hf)
