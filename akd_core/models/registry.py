"""The model registry: user-facing names -> builder functions that return an nn.Module."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from akd_core.errors import SpecError
from akd_core.models.names import (
    INPUT_KINDS,
    MODEL_NAMES,
    OptionError,
    check_arch_input,
    check_arch_name,
    check_arch_options,
    positive_int,
)

__all__ = ["OptionError", "build_model", "count_params", "positive_int", "register_model"]

# builder(input_shape, num_classes, **options) -> nn.Module
Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}

# Where option errors point, given where the architecture name came from.
_OPTIONS_FIELD = {"student.arch": "student.options", "teacher.arch": "teacher.arch_options"}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register `builder(input_shape, num_classes, **options)` under `name`."""
    if name not in INPUT_KINDS:
        # names.py is what the API validates against; a builder it does not list is a bug.
        raise ValueError(f"model {name!r} is missing from akd_core.models.names.MODEL_NAMES")

    def deco(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return deco


def _load_builtin() -> None:
    # Imported here, not at module top, because these modules import register_model from here.
    from akd_core.models import cnn, mlp, resnet  # noqa: F401


def available_models() -> list[str]:
    """The registry's model names, in the order of names.MODEL_NAMES."""
    _load_builtin()
    return [n for n in MODEL_NAMES if n in _BUILDERS]


def _accepted_options(builder: Builder) -> dict[str, Any]:
    params = inspect.signature(builder).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    options: dict[str, Any] | None = None,
    field: str = "student.arch",
) -> nn.Module:
    """Build registry model `name` for samples of `input_shape` and `num_classes` outputs."""
    _load_builtin()
    check_arch_name(name, field)
    check_arch_input(name, tuple(input_shape), field)
    if num_classes < 2:
        raise SpecError(f"need at least 2 classes to classify, got {num_classes}", field="dataset")
    builder = _BUILDERS[name]
    options = dict(options or {})
    options_field = _OPTIONS_FIELD.get(field, f"{field}_options")
    check_arch_options(name, options, options_field)
    try:
        return builder(tuple(int(d) for d in input_shape), int(num_classes), **options)
    except OptionError as exc:
        raise SpecError(
            f"option {exc.option!r} of {name!r}: {exc.message}",
            field=f"{options_field}.{exc.option}",
        ) from exc


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not) in `model`."""
    return sum(p.numel() for p in model.parameters())
