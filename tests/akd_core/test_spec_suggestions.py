"""Spec typos get a "did you mean" naming the closest accepted field or value."""

from __future__ import annotations

from typing import Any

import pytest

from akd_core.errors import SpecError
from akd_core.spec import parse_spec


def _spec(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "teacher": {"source": "file:t.onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
    }
    return base | extra


@pytest.mark.parametrize(
    ("spec", "field", "suggestion"),
    [
        (_spec(anealing={}), "anealing", "did you mean 'annealing'?"),
        (_spec(annealing={"tau_mx": 4}), "annealing.tau_mx", "did you mean 'tau_max'?"),
        (_spec(method="aneal"), "method", "did you mean 'annealing'?"),
        (_spec(compare=["studnt"]), "compare.0", "did you mean 'student'?"),
        (
            _spec(dataset={"source": "builtin:digits", "formt": "npz"}),
            "dataset.formt",
            "did you mean 'format'?",
        ),
    ],
)
def test_a_typo_names_the_closest_accepted_name(spec, field, suggestion):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert info.value.field == field
    assert suggestion in str(info.value)


def test_a_field_with_no_close_match_lists_the_accepted_fields():
    with pytest.raises(SpecError) as info:
        parse_spec(_spec(zzzzqq=1))
    assert "accepted: teacher, student, dataset, method, annealing" in str(info.value)
