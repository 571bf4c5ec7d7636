"""The OpenAPI document tells clients about problem+json errors and the bearer key."""

from __future__ import annotations

from typing import Any

from app_support import LOCAL_URL, make_settings
from fastapi.testclient import TestClient

from app.main import create_app

PROBLEM_REF = "#/components/schemas/Problem"
EVERY_ROUTE = {"400", "403", "404", "421", "422"}
ROUTE_PROBLEMS = {
    ("/uploads", "post"): {"408", "413", "415", "429"},
    ("/jobs", "post"): {"413", "415"},
    ("/jobs/{job_id}/cancel", "post"): {"409", "415"},
    ("/jobs/{job_id}/events", "get"): {"429"},
}
UNKEYED = {("/healthz", "get")}


def _document(tmp_path: Any, **overrides: Any) -> dict[str, Any]:
    settings = make_settings(tmp_path, **overrides)
    with TestClient(create_app(settings), base_url=LOCAL_URL) as client:
        doc: dict[str, Any] = client.get("/openapi.json").json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_every_error_is_declared_as_problem_json(tmp_path):
    doc = _document(tmp_path, require_keys=True)
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "field"} <= set(problem["properties"])
    assert {"title", "status", "detail"} <= set(problem["required"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        expected = EVERY_ROUTE | ROUTE_PROBLEMS.get((path, method), set())
        expected |= set() if (path, method) in UNKEYED else {"401"}
        errors = {s: r for s, r in op["responses"].items() if s.startswith(("4", "5"))}
        assert set(errors) == expected, (path, method, sorted(errors))
        for status, response in errors.items():
            assert list(response["content"]) == ["application/problem+json"], (path, status)
            assert response["content"]["application/problem+json"]["schema"] == {
                "$ref": PROBLEM_REF
            }


def test_route_specific_descriptions_are_kept(tmp_path):
    doc = _document(tmp_path)
    assert doc["paths"]["/uploads"]["post"]["responses"]["413"]["description"] == (
        "Over the size cap"
    )


def test_keyed_routes_declare_the_bearer_scheme_when_keys_are_on(tmp_path):
    doc = _document(tmp_path, require_keys=True)
    schemes = doc["components"]["securitySchemes"]
    assert len(schemes) == 1
    [(name, scheme)] = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, method, op in _operations(doc):
        if (path, method) in UNKEYED:
            assert "security" not in op, path
        else:
            assert op["security"] == [{name: []}], (path, method)
    assert "/docs" not in doc["paths"] and "/openapi.json" not in doc["paths"]


def test_no_key_is_asked_for_when_keys_are_off(tmp_path):
    doc = _document(tmp_path)
    assert "securitySchemes" not in doc["components"]
    for path, method, op in _operations(doc):
        assert "security" not in op, (path, method)
        assert "401" not in op["responses"], (path, method)


def test_job_states_are_published_as_an_enum(tmp_path):
    doc = _document(tmp_path)
    state = doc["components"]["schemas"]["JobPublic"]["properties"]["state"]
    assert state["enum"] == ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
