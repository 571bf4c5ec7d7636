"""The job spec (CONTRACT): defaults, refusals that name the field, the published schema."""

import json
from pathlib import Path

import pytest

from akd_core.errors import SpecError
from akd_core.spec import json_schema, load_spec_file, parse_spec

MINIMAL = {
    "teacher": {"source": "upload:abc123", "format": "onnx"},
    "student": {"arch": "resnet8"},
    "dataset": {"source": "builtin:digits"},
}
SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "job-spec.schema.json"


def test_minimal_spec_gets_sensible_defaults():
    spec = parse_spec(MINIMAL)
    assert spec.method == "annealing"
    assert (spec.annealing.tau_max, spec.annealing.phase1_epochs) == (10, 20)
    assert spec.epoch_budget == 30
    assert spec.arms == ["annealing"]
    assert spec.optimizer.resolved_schedule == "cosine"


def test_design_example_validates():
    spec = parse_spec(
        {
            **MINIMAL,
            "method": "annealing",
            "annealing": {"tau_max": 10, "phase1_epochs": 20, "phase2_epochs": 10},
            "compare": ["student", "kd"],
            "seed": 0,
        }
    )
    assert spec.arms == ["annealing", "student", "kd"]


def test_sgd_defaults_follow_the_paper():
    spec = parse_spec({**MINIMAL, "optimizer": {"name": "sgd"}})
    o = spec.optimizer
    assert (o.resolved_lr, o.momentum, o.resolved_weight_decay) == (0.1, 0.9, 1e-4)
    assert o.resolved_schedule == "step"


def test_e1_not_multiple_of_tau_max_names_both_numbers():
    with pytest.raises(SpecError) as err:
        parse_spec({**MINIMAL, "annealing": {"tau_max": 4, "phase1_epochs": 10}})
    assert err.value.field == "annealing"
    assert "phase1_epochs (10)" in err.value.message and "tau_max (4)" in err.value.message
    assert "8 or 12" in err.value.message


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"colour": "red"}, "colour", "unknown field"),
        ({"student": {"arch": "resnet8", "depth": 3}}, "student.depth", "unknown field"),
        ({"teacher": {"source": "http://x/y.onnx"}}, "teacher.source", "upload:<id>"),
        ({"method": "distill"}, "method", "annealing"),
        ({"compare": ["kd", "kd"]}, "compare", "twice"),
        ({"teacher": {"source": "upload:a", "format": "safetensors"}}, "teacher", "teacher.arch"),
        (
            {"dataset": {"source": "builtin:digits", "val_fraction": 0.9}},
            "dataset.val_fraction",
            "",
        ),
        ({"optimizer": {"batch_size": 0}}, "optimizer.batch_size", ""),
    ],
)
def test_bad_fields_are_named(patch, field, words):
    with pytest.raises(SpecError) as err:
        parse_spec({**MINIMAL, **patch})
    assert err.value.field == field
    assert words in err.value.message


def test_missing_required_section():
    with pytest.raises(SpecError) as err:
        parse_spec({"teacher": MINIMAL["teacher"], "student": MINIMAL["student"]})
    assert err.value.field == "dataset"


def test_spec_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"teacher": ')
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec_file(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec_file(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(MINIMAL))
    assert load_spec_file(good).student.arch == "resnet8"


def test_published_schema_is_current():
    """docs/job-spec.schema.json is regenerated with `python -m akd_core.spec_schema`."""
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()
