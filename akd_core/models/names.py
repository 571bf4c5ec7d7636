"""Registry model names and the input kinds each accepts, importable without torch (for the API)."""

from __future__ import annotations

from akd_core.errors import SpecError

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
    if name not in INPUT_KINDS:
        raise SpecError(
            f"unknown architecture {name!r}; available: {', '.join(MODEL_NAMES)}", field=field
        )


def check_arch_options(name: str, options: dict, field: str = "student.options") -> None:
    """Raise SpecError for an option that architecture `name` (a checked name) does not take."""
    for key in options:
        if key not in ARCH_OPTIONS[name]:
            raise SpecError(
                f"unknown option {key!r} for architecture {name!r}; accepted options: "
                f"{', '.join(ARCH_OPTIONS[name])}",
                field=field,
            )


def check_arch_input(name: str, input_shape: tuple[int, ...], field: str = "student.arch") -> None:
    """Raise SpecError when model `name` cannot take samples of `input_shape`."""
    check_arch_name(name, field)
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
