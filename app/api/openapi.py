"""The OpenAPI document: the job spec's schema, problem+json errors and the bearer scheme."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from akd_core.spec import JobSpec
from app.api.problems import PROBLEM_MEDIA_TYPE
from app.schemas import Problem

# Every operation may answer these (bad requests, the keys-off guards, validation); routes
# declare their own further ones (408, 409, 413, 415, 429), rendered as problems here too.
COMMON_PROBLEMS = (400, 403, 404, 421, 422)
KEYED_PROBLEMS = (401,)
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem_response(status: int, description: str | None) -> dict[str, Any]:
    return {
        "description": description or HTTPStatus(status).phrase,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }


def _declare_problems(operation: dict[str, Any], keyed: bool) -> None:
    responses = operation.setdefault("responses", {})
    statuses = {*COMMON_PROBLEMS, *(KEYED_PROBLEMS if keyed else ())}
    statuses |= {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    for status in sorted(statuses):
        # Keep a route's own description ("Over the size cap"), replace FastAPI's
        # application/json validation-error body, which the API never sends.
        declared = responses.get(str(status), {})
        responses[str(status)] = _problem_response(status, declared.get("description"))


def build_openapi(app: FastAPI, require_keys: bool) -> dict[str, Any]:
    """The document for `app`; keyed routes declare the bearer scheme when keys are on."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # POST /jobs reads its body raw (for field-naming errors), so add the spec's schema here.
    spec = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(spec.pop("$defs", {}))
    schemas["JobSpec"] = spec
    schemas["Problem"] = Problem.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            keyed = "security" in operation
            if keyed and not require_keys:
                del operation["security"]  # no key is taken: clients must not send one
            _declare_problems(operation, keyed and require_keys)
    if not require_keys:
        components.pop("securitySchemes", None)
    return schema
