"""Checks a report.json against the published docs/report.schema.json, field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from akd_core.report_schema import SCHEMA_PATH

# The CONTRACT fields of report.json (DESIGN.md), as paths; "*" is any key or list item.
CONTRACT_PATHS = [
    "teacher.accuracy",
    "student.accuracy",
    "baselines.*.accuracy",
    "params.teacher",
    "params.student",
    "onnx.parity_max_abs_diff",
    "onnx.argmax_agreement",
    *(f"history.*.{k}" for k in ("phase", "epoch", "T", "phi", "train_loss", "val_accuracy")),
]


def published_schema() -> dict[str, Any]:
    """docs/report.schema.json as users read it."""
    schema: dict[str, Any] = json.loads(Path(SCHEMA_PATH).read_text())
    return schema


def contract_errors(report: Any) -> list[str]:
    """Every violation of the published schema, as 'path: message' (empty when valid)."""
    validator = jsonschema_rs.validator_for(published_schema())
    return [
        ".".join(map(str, e.instance_path)) + f": {e.message}"
        for error in validator.iter_errors(report)
        for e in _leaves(error)
    ]


def _leaves(error: Any) -> list[Any]:
    """The errors inside a failed `anyOf` (a nullable object), so the broken field is named."""
    branches = getattr(error.kind, "context", None)
    if not branches:
        return [error]
    inner = [e for branch in branches for e in branch if 'of type "null"' not in e.message]
    return [leaf for e in inner for leaf in _leaves(e)] or [error]


def assert_report_follows_contract(report: Any) -> None:
    """Fail naming each field of `report` that breaks the published schema."""
    errors = contract_errors(report)
    assert not errors, "report.json breaks docs/report.schema.json:\n" + "\n".join(errors)
    for path in CONTRACT_PATHS:  # present where the schema says so, checked value by value
        assert _values(report, path.split(".")), f"report.json has no {path}"


def _values(node: Any, parts: list[str]) -> list[Any]:
    if not parts:
        return [node]
    head, rest = parts[0], parts[1:]
    if head == "*":
        children = list(node.values() if isinstance(node, dict) else node)
        if not children:  # e.g. no baselines compared: nothing to require
            return [None]
        return [v for child in children for v in _values(child, rest)]
    return _values(node[head], rest) if isinstance(node, dict) and head in node else []
