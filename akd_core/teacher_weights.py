"""A safetensors teacher: a registry architecture (teacher.arch) filled with the file's weights."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from akd_core.errors import TeacherLoadError, short_message
from akd_core.models import build_model
from akd_core.spec import TeacherSpec

_LIST_KEYS = 5  # how many offending keys an error message shows
# BatchNorm's step counter is absent from some exports and unused in eval mode.
_OPTIONAL_SUFFIX = "num_batches_tracked"


def _weights_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = sorted(k for k in state if k not in expected and not k.endswith(_OPTIONAL_SUFFIX))
    wrong = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            more = f", ... ({len(keys)} in all)" if len(keys) > _LIST_KEYS else ""
            problems.append(f"{label}: {', '.join(keys[:_LIST_KEYS])}{more}")
    return problems


def registry_model_with_weights(
    path: Path,
    spec: TeacherSpec,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None,
) -> nn.Module:
    """Build teacher.arch for the dataset's shape and load the file's weights into it, checked."""
    if not spec.arch:
        raise TeacherLoadError(
            "format 'safetensors' holds weights only: name the architecture in teacher.arch",
            field="teacher.arch",
        )
    if input_shape is None or num_classes is None:
        raise ValueError("a safetensors teacher needs input_shape and num_classes to be built")
    model = build_model(
        spec.arch, input_shape, num_classes, spec.arch_options, field="teacher.arch"
    )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise TeacherLoadError(
            f"{path.name!r} is not a readable safetensors file: {short_message(exc)}",
            field="teacher.source",
        ) from exc
    problems = _weights_mismatch(model, state)
    if problems:
        raise TeacherLoadError(
            f"the weights in {path.name!r} do not fit teacher.arch {spec.arch!r} with options "
            f"{spec.arch_options} for inputs {tuple(input_shape)} and {num_classes} classes; "
            + "; ".join(problems),
            field="teacher.arch",
        )
    model.load_state_dict(state, strict=False)  # only BatchNorm step counters may differ
    return model
