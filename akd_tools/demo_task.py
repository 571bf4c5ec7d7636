"""The demo's task: which teacher, student, data and schedule `make demo` runs (see bench/demo_select.py)."""

from __future__ import annotations

import copy
from typing import Any

SEEDS = (0, 1, 2)
# The reference teacher, trained per seed on that seed's whole training split (never its test).
TEACHER_ARCH = "cnn-small"
TEACHER_EPOCHS = 10

# What every candidate of bench/demo_select.py shares; a candidate patches it.
BASE_SPEC: dict[str, Any] = {
    "student": {"arch": "cnn-tiny"},
    "dataset": {"source": "builtin:digits"},
    "method": "annealing",
    "annealing": {"tau_max": 5, "phase1_epochs": 30, "phase2_epochs": 15},
    "optimizer": {"batch_size": 64},
    "compare": ["student", "kd"],
}
# The setting bench/demo_select.py selected on the validation split (docs/benchmarks.md): a
# good teacher, little labelled data (50 of the ~1,290 training images), a 1,442-parameter student.
DEMO_PATCH: dict[str, Any] = {
    "dataset": {"max_train_samples": 50},
    "student": {"arch": "cnn-tiny", "options": {}},
    "annealing": {"tau_max": 5, "phase1_epochs": 60, "phase2_epochs": 15},
    "optimizer": {"batch_size": 16},
}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of base with patch's keys replaced (nested dicts merged key by key)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def job_spec(teacher_source: str, seed: int, patch: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job spec of one seed: BASE_SPEC with `patch` (default: the demo's) and the teacher."""
    spec = merge(BASE_SPEC, DEMO_PATCH if patch is None else patch)
    return spec | {"teacher": {"source": teacher_source}, "seed": seed}
