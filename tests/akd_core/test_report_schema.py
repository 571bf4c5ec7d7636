"""docs/report.schema.json: current with its models, requiring every CONTRACT field, and naming
each field a report breaks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from akd_core.report_schema import SCHEMA_PATH, schema_text
from tests.akd_core.report_support import write_report
from tests.report_contract import CONTRACT_PATHS, contract_errors, published_schema


def test_the_published_schema_is_generated_from_the_models():
    assert SCHEMA_PATH.read_text() == schema_text(), (
        "docs/report.schema.json is out of date: run `python -m akd_core.report_schema`"
    )


def _node(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node` with its $ref followed and its non-null anyOf branch taken."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    branches = [b for b in node.get("anyOf", []) if b.get("type") != "null"]
    return _node(schema, branches[0]) if branches else node


@pytest.mark.parametrize("path", CONTRACT_PATHS)
def test_every_contract_field_is_required(path):
    schema = published_schema()
    node: dict[str, Any] = schema
    for part in path.split("."):
        node = _node(schema, node)
        if part == "*":
            node = node.get("items") or node["additionalProperties"]
            continue
        assert part in node.get("required", []), f"{path}: {part} is not required"
        node = node["properties"][part]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A report.json written by akd_core.report (untrained student, INT8 asked for)."""
    return write_report(Path(tmp_path_factory.mktemp("run")), int8=True)


def test_a_written_report_follows_the_schema(report):
    assert contract_errors(report) == []


def _broken(report: dict[str, Any], path: str, value: Any = ...) -> dict[str, Any]:
    """A copy of report with the field at `path` (dots; numbers index lists) removed or set."""
    out = copy.deepcopy(report)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("teacher.accuracy", ..., '"accuracy" is a required property'),
        ("student.accuracy", 1.5, "greater than the maximum"),
        ("baselines.student.accuracy", ..., '"accuracy" is a required property'),
        ("params.student", ..., '"student" is a required property'),
        ("onnx.parity_max_abs_diff", -1.0, "less than the minimum"),
        ("onnx.argmax_agreement", ..., '"argmax_agreement" is a required property'),
        ("history.0.T", ..., '"T" is a required property'),
        ("history.2.phi", 0.5, 'is not of type "null"'),  # Phase 2 has no Phi
        ("history.1.phase", 3, "is not one of"),
        ("history.0.val_accuracy", "0.5", 'is not of type "number"'),
        ("int8.file", ..., '"file" is a required property'),  # kept, yet no file named
    ],
)
def test_the_schema_names_each_broken_field(report, path, value, words):
    errors = contract_errors(_broken(report, path, value))
    where = path if value is not ... else path.rsplit(".", 1)[0]
    assert any(e.startswith(f"{where}:") and words in e for e in errors), errors


def test_report_json_is_written_once_complete_with_the_total_time(tmp_path, monkeypatch):
    import akd_core.report as report_module

    writes: list[str] = []
    real_write = report_module.atomic_write_json

    def counting_write(path: Path, data: Any) -> None:
        writes.append(path.name)
        real_write(path, data)

    monkeypatch.setattr(report_module, "atomic_write_json", counting_write)
    returned = write_report(tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert writes == ["report.json"]
    assert on_disk == json.loads(json.dumps(returned))
    assert 0 < on_disk["timings"]["total_s"] < 600
