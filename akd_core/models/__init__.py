"""Student and teacher architectures by name: the registry, the builders, and parameter counts.

`akd_core.models.names` lists the names without importing torch, so the API can validate a
spec cheaply. Importing this package does not import torch either: the torch-using names
below are loaded on first access (PEP 562), which keeps `import akd_core.models.names` light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from akd_core.models.names import (
    INPUT_KINDS,
    MODEL_NAMES,
    check_arch_input,
    check_arch_name,
    input_kind,
    model_kind_ok,
)

if TYPE_CHECKING:
    from akd_core.models.registry import (
        available_models,
        build_model,
        count_params,
        register_model,
    )

_LAZY = {
    "available_models": "akd_core.models.registry",
    "build_model": "akd_core.models.registry",
    "count_params": "akd_core.models.registry",
    "register_model": "akd_core.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'akd_core.models' has no attribute {name!r}")


__all__ = [
    "INPUT_KINDS",
    "MODEL_NAMES",
    "available_models",
    "build_model",
    "check_arch_input",
    "check_arch_name",
    "count_params",
    "input_kind",
    "model_kind_ok",
    "register_model",
]
