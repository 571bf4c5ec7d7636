"""Registry model names and the input kinds each accepts, importable without torch (for the API)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from akd_core.errors import SpecError
from akd_core.text.names import TEXT_ARCH_OPTIONS, TEXT_MODEL_NAMES  # text students (no torch)

IMAGE = "image"  # (C, H, W)
FEATURES = "features"  # (F,)
SIGNAL = "signal"  # (C, L)

# Convolutional models downsample twice; below this side the feature maps would vanish.
MIN_IMAGE_SIDE = 8

RESNET_DEPTHS: tuple[int, ...] = (8, 14, 20, 32, 44, 56, 110)
_CONV_NAMES: tuple[str, ...] = (
    *(f"resnet{d}" for d in RESNET_DEPTHS),
    "cnn-tiny",
    "cnn-small",
    "cnn",
)

MODEL_NAMES: tuple[str, ...] = (*_CONV_NAMES, "mlp")

INPUT_KINDS: dict[str, tuple[str, ...]] = {
    **{name: (IMAGE,) for name in _CONV_NAMES},
    "mlp": (IMAGE, FEATURES, SIGNAL),
}

# The options each architecture accepts (student.options / teacher.arch_options).
ARCH_OPTIONS: dict[str, tuple[str, ...]] = {
    **{name: ("width",) for name in _CONV_NAMES},
    "mlp": ("hidden",),
}

# Default width of each convolutional model (the builders' keyword defaults; a test checks).
DEFAULT_WIDTH: dict[str, int] = {
    **{f"resnet{d}": 16 for d in RESNET_DEPTHS},
    "cnn-tiny": 8,
    "cnn-small": 16,
    "cnn": 32,
}
DEFAULT_HIDDEN: tuple[int, ...] = (128, 64)
MAX_WIDTH = 1024
MAX_HIDDEN = 65536
MAX_HIDDEN_LAYERS = 16
# cnn-* models: (channel multipliers of the stages, conv blocks per stage).
_PLAIN_LAYOUT: dict[str, tuple[tuple[int, ...], int]] = {
    "cnn-tiny": ((1, 2), 1),
    "cnn-small": ((1, 2, 4), 1),
    "cnn": ((1, 2, 4), 2),
}

_KIND_BY_RANK = {1: FEATURES, 2: SIGNAL, 3: IMAGE}
_KIND_LAYOUT = {FEATURES: "(F,)", SIGNAL: "(C, L)", IMAGE: "(C, H, W)"}


def input_kind(input_shape: tuple[int, ...]) -> str:
    """Name the kind of one sample's shape: features (F,), signal (C, L) or image (C, H, W)."""
    kind = _KIND_BY_RANK.get(len(input_shape))
    if kind is None or any(int(d) < 1 for d in input_shape):
        raise SpecError(
            f"input shape {tuple(input_shape)} is not supported; a sample must be features (F,), "
            "a signal (C, L) or an image (C, H, W) with every size >= 1",
            field="dataset",
        )
    return kind


def check_arch_name(name: str, field: str = "student.arch") -> None:
    """Raise SpecError when `name` is not a registry model, listing the available names."""
    if name not in INPUT_KINDS and not (field == "student.arch" and name in TEXT_ARCH_OPTIONS):
        names = (*MODEL_NAMES, *TEXT_MODEL_NAMES) if field == "student.arch" else MODEL_NAMES
        raise SpecError(
            f"unknown architecture {name!r}; available: {', '.join(names)}", field=field
        )


def check_arch_options(name: str, options: dict, field: str = "student.options") -> None:
    """Raise SpecError for an option that architecture `name` (a checked name) does not take."""
    accepted = ARCH_OPTIONS.get(name) or TEXT_ARCH_OPTIONS[name]
    for key in options:
        if key not in accepted:
            raise SpecError(
                f"unknown option {key!r} for architecture {name!r}; accepted options: "
                f"{', '.join(accepted)}",
                field=field,
            )


def check_arch_input(name: str, input_shape: tuple[int, ...], field: str = "student.arch") -> None:
    """Raise SpecError when model `name` cannot take samples of `input_shape`."""
    check_arch_name(name, field)
    if name in TEXT_ARCH_OPTIONS:
        raise SpecError(
            f"architecture {name!r} is a text student: it needs a transformers teacher "
            "(teacher.format 'hf') and text data (csv or jsonl), not samples of shape "
            f"{tuple(input_shape)}",
            field=field,
        )
    kind = input_kind(input_shape)
    if kind not in INPUT_KINDS[name]:
        accepting = [n for n in MODEL_NAMES if kind in INPUT_KINDS[n]]
        raise SpecError(
            f"architecture {name!r} accepts {' or '.join(INPUT_KINDS[name])} input, but the "
            f"dataset holds {kind} "
            f"{_KIND_LAYOUT[kind]} of shape {tuple(input_shape)}; architectures that accept "
            f"{kind}: {', '.join(accepting)}",
            field=field,
        )
    if kind == IMAGE and name in _CONV_NAMES:
        side = min(input_shape[1], input_shape[2])
        if side < MIN_IMAGE_SIDE:
            raise SpecError(
                f"architecture {name!r} needs images of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                f"pixels, got {input_shape[1]}x{input_shape[2]}; resize them (dataset.image_size) "
                "or use 'mlp'",
                field=field,
            )


def model_kind_ok(name: str, input_shape: tuple[int, ...]) -> bool:
    """True when registry model `name` accepts samples of `input_shape`."""
    try:
        check_arch_input(name, input_shape)
    except SpecError:
        return False
    return True


class OptionError(ValueError):
    """A builder's option has a bad value; build_model turns it into a SpecError."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option
        self.message = message


def positive_int(option: str, value: Any, *, maximum: int = 4096) -> int:
    """Validate an integer option in 1..maximum (bools are refused), for builders."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise OptionError(option, f"got {value!r}; expected an integer from 1 to {maximum}")
    return value


def hidden_sizes(value: Any) -> list[int]:
    """Validate the mlp `hidden` option: a list of up to 16 layer sizes."""
    if not isinstance(value, list | tuple) or len(value) > MAX_HIDDEN_LAYERS:
        raise OptionError(
            "hidden",
            f"got {value!r}; expected a list of up to {MAX_HIDDEN_LAYERS} layer sizes, "
            "e.g. [128, 64]",
        )
    return [positive_int("hidden", h, maximum=MAX_HIDDEN) for h in value]


def _conv_bn(c_in: int, c_out: int, k: int = 3) -> int:
    return k * k * c_in * c_out + 2 * c_out  # bias-free conv + BatchNorm weight and bias


def _linear(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


def _resnet_params(depth: int, c: int, k: int, options: dict[str, Any]) -> int:
    w = positive_int("width", options.get("width", 16), maximum=MAX_WIDTH)
    n = (depth - 2) // 6
    total, c_in = _conv_bn(c, w), w
    for stage, c_out in enumerate((w, 2 * w, 4 * w)):
        for block in range(n):
            total += _conv_bn(c_in, c_out) + _conv_bn(c_out, c_out)
            if (stage > 0 and block == 0) or c_in != c_out:
                total += _conv_bn(c_in, c_out, 1)  # option-B projection shortcut
            c_in = c_out
    return total + _linear(c_in, k)


def _plain_params(name: str, c: int, k: int, options: dict[str, Any]) -> int:
    w = positive_int("width", options.get("width", DEFAULT_WIDTH[name]), maximum=MAX_WIDTH)
    multipliers, blocks = _PLAIN_LAYOUT[name]
    total, c_in = 0, c
    for m in multipliers:
        for _ in range(blocks):
            total += _conv_bn(c_in, m * w)
            c_in = m * w
    return total + _linear(c_in, k)


def _mlp_params(d: int, k: int, options: dict[str, Any]) -> int:
    hidden = options.get("hidden")
    sizes = list(DEFAULT_HIDDEN) if hidden is None else hidden_sizes(hidden)
    dims = [d, *sizes, k]
    return sum(_linear(a, b) for a, b in zip(dims, dims[1:], strict=False))


def _param_formula(name: str) -> Callable[[tuple[int, ...], int, dict[str, Any]], int]:
    if name == "mlp":
        return lambda shape, k, opts: _mlp_params(math.prod(shape), k, opts)
    if name in _PLAIN_LAYOUT:
        return lambda shape, k, opts: _plain_params(name, shape[0], k, opts)
    depth = int(name.removeprefix("resnet"))
    return lambda shape, k, opts: _resnet_params(depth, shape[0], k, opts)


def student_params(
    name: str, options: dict[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> int:
    """Parameter count of registry model `name`, computed without building it (no torch).

    Raises SpecError for an unknown name or option, or an option value out of range.
    """
    check_arch_name(name)
    check_arch_options(name, options)
    try:
        return _param_formula(name)(tuple(int(d) for d in input_shape), num_classes, options)
    except OptionError as exc:
        raise SpecError(
            f"option {exc.option!r} of {name!r}: {exc.message}",
            field=f"student.options.{exc.option}",
        ) from exc
