"""Text student names, their options and parameter counts, importable without torch (for the API)."""

from __future__ import annotations

from typing import Any

from akd_core.errors import SpecError

TEXT_ARCH_OPTIONS: dict[str, tuple[str, ...]] = {
    "bert": ("layers", "hidden", "heads", "intermediate", "dropout"),
    "shrink-teacher": ("layers",),
}
TEXT_MODEL_NAMES: tuple[str, ...] = tuple(TEXT_ARCH_OPTIONS)
# BERT-Small of the paper's GLUE runs (4 layers, hidden 256).
BERT_DEFAULTS: dict[str, int] = {"layers": 4, "hidden": 256, "heads": 4, "intermediate": 1024}
BERT_MAXIMA: dict[str, int] = {"layers": 48, "hidden": 4096, "heads": 64, "intermediate": 16384}
# BERT's hidden and attention dropout. 0 makes training deterministic across device counts:
# dropout masks are drawn per process, so N data-parallel ranks draw other masks than one.
BERT_DROPOUT = 0.1
SHRINK_DEFAULT_LAYERS = 2  # of the teacher's; at most the teacher's own count


def is_text_arch(name: str) -> bool:
    """True for the students of text teachers (bert, shrink-teacher)."""
    return name in TEXT_ARCH_OPTIONS


def check_teacher_kind(kind: str, arch: str) -> None:
    """shrink-teacher copies weights from an hf folder; an ONNX graph has no layers to copy."""
    if kind == "onnx" and arch == "shrink-teacher":
        raise SpecError(
            "shrink-teacher copies the layers of an 'hf' teacher (a transformers folder); an "
            "ONNX teacher's graph has none to copy: use student.arch 'bert'",
            field="student.arch",
        )


def check_text_export(raw_input: bool) -> None:
    """export.raw_input has no meaning for text: the tokenizer is the preprocessing."""
    if raw_input:
        raise SpecError(
            "export.raw_input bakes image or feature preprocessing into the graph; a text "
            "student's preprocessing is its tokenizer, shipped as tokenizer/: leave raw_input "
            "off for text",
            field="export.raw_input",
        )


def _int_option(options: dict[str, Any], name: str, default: int, maximum: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise SpecError(
            f"option {name!r}: got {value!r}; expected an integer from 1 to {maximum}",
            field=f"student.options.{name}",
        )
    return value


def bert_options(options: dict[str, Any]) -> dict[str, int]:
    """The `bert` student's layers, hidden, heads, intermediate, checked (heads divide hidden)."""
    for key in options:
        if key not in TEXT_ARCH_OPTIONS["bert"]:
            raise SpecError(
                f"unknown option {key!r} for architecture 'bert'; accepted options: "
                f"{', '.join(TEXT_ARCH_OPTIONS['bert'])}",
                field="student.options",
            )
    out = {k: _int_option(options, k, BERT_DEFAULTS[k], BERT_MAXIMA[k]) for k in BERT_DEFAULTS}
    bert_dropout(options)  # checked with the others, before any model is built
    if out["hidden"] % out["heads"]:
        raise SpecError(
            f"option 'hidden' ({out['hidden']}) must be a multiple of 'heads' ({out['heads']})",
            field="student.options.hidden",
        )
    return out


def bert_dropout(options: dict[str, Any]) -> float:
    """The `bert` student's dropout probability (hidden and attention), checked: 0 <= p < 1."""
    value = options.get("dropout", BERT_DROPOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise SpecError(
            f"option 'dropout': got {value!r}; expected a number from 0 (no dropout) up to "
            f"but not including 1 (default {BERT_DROPOUT})",
            field="student.options.dropout",
        )
    return float(value)


def encoder_params(vocab: int, positions: int, types: int, hidden: int, layers: int,
                   intermediate: int, num_classes: int) -> int:  # fmt: skip
    """Parameters of a BERT-style classifier: embeddings, layers, pooler and head."""
    h, i = hidden, intermediate
    embeddings = (vocab + positions + types) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    return embeddings + layers * layer + (h * h + h) + (h * num_classes + num_classes)


def text_student_params(arch: str, options: dict[str, Any], teacher_config: dict[str, Any],
                        num_classes: int, uses_types: bool = True) -> int:  # fmt: skip
    """Parameter count of a text student, from the options and the teacher's config (no torch)."""
    c = teacher_config
    vocab, positions = int(c.get("vocab_size", 0)), int(c.get("max_position_embeddings", 0))
    if arch == "bert":
        o = bert_options(options)
        return encoder_params(vocab, positions, 2 if uses_types else 1, o["hidden"],
                              o["layers"], o["intermediate"], num_classes)  # fmt: skip
    layers = options.get("layers", SHRINK_DEFAULT_LAYERS)
    layers = layers if isinstance(layers, int) else SHRINK_DEFAULT_LAYERS  # checked when built
    return encoder_params(vocab, positions, int(c.get("type_vocab_size", 2)),
                          int(c.get("hidden_size", 0)), layers,
                          int(c.get("intermediate_size", 0)), num_classes)  # fmt: skip
