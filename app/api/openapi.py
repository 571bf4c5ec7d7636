"""The OpenAPI document: the job spec's schema, problem+json errors and the bearer scheme."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from akd_core.spec import JobSpec
from app.api.problems import PROBLEM_MEDIA_TYPE
from app.schemas import Problem

# Every operation may answer these (bad requests, the keys-off guards, validation); routes
# declare their own further ones (408, 409, 413, 415, 429), rendered as problems here too.
COMMON_PROBLEMS = (400, 403, 404, 421, 422)
KEYED_PROBLEMS = (401,)
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Operation ids a person would choose: generated clients name their calls after these
# (`upload_file`, not `create_upload_uploads_post`). Paths stay as in the CONTRACT.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("post", "/uploads"): "upload_file",
    ("post", "/jobs"): "create_job",
    ("get", "/jobs"): "list_jobs",
    ("get", "/jobs/{job_id}"): "get_job",
    ("post", "/jobs/{job_id}/cancel"): "cancel_job",
    ("get", "/jobs/{job_id}/events"): "stream_events",
    ("get", "/jobs/{job_id}/artifacts/{name}"): "get_artifact",
    ("get", "/healthz"): "get_health",
    ("get", "/schema/job-spec"): "get_job_spec_schema",
    ("get", "/schema/report"): "get_report_schema",
}
# The smallest spec POST /jobs accepts: /docs pre-fills "Try it out" with the first example.
SMALLEST_SPEC = {
    "teacher": {"source": "upload:PASTE_THE_TEACHER_UPLOAD_ID", "format": "onnx"},
    "student": {"arch": "cnn-tiny"},
    "dataset": {"source": "builtin:digits"},
}
SPEC_EXAMPLES = {
    "smallest": {
        "summary": "The smallest spec: teacher, student, dataset",
        "value": SMALLEST_SPEC,
    },
    "annealing_with_baselines": {
        "summary": "Annealing with its schedule, compared against student-only and KD",
        "value": SMALLEST_SPEC
        | {
            "method": "annealing",
            "annealing": {"tau_max": 4, "phase1_epochs": 20, "phase2_epochs": 10},
            "compare": ["student", "kd"],
            "seed": 0,
        },
    },
}
CREATE_JOB_DESCRIPTION = """**Upload first.** A teacher comes from `POST /uploads` (ONNX, TorchScript, safetensors or a
transformers folder as an archive); put the returned `id` into the spec as `upload:<id>`.
Datasets are `builtin:digits` (and the other builtin names) or an upload too.

The smallest spec names only teacher, student and dataset; every other field has a default:

```json
{"teacher": {"source": "upload:<id>", "format": "onnx"},
 "student": {"arch": "cnn-tiny"},
 "dataset": {"source": "builtin:digits"}}
```

The spec and its uploads are validated before anything is created: 202 with `Location:
/jobs/{id}`, or a 422 problem naming the field (with "did you mean" for a typo). Follow the
job with `GET /jobs/{id}` or `GET /jobs/{id}/events`."""


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
    route_names = {
        (method.lower(), route.path_format): route.name
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            operation["operationId"] = OPERATION_IDS.get(
                (method, path), route_names.get((method, path), operation.get("operationId"))
            )
            _name_free_form_responses(operation)
            keyed = "security" in operation
            if keyed and not require_keys:
                del operation["security"]  # no key is taken: clients must not send one
            _declare_problems(operation, keyed and require_keys)
    if not require_keys:
        components.pop("securitySchemes", None)
    _document_create_job(schema)
    return schema


def _name_free_form_responses(operation: dict[str, Any]) -> None:
    """A free-form JSON answer is titled after its operation, not FastAPI's "Response ... Get"
    (generated clients name a class after the title)."""
    for response in operation.get("responses", {}).values():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if str(schema.get("title", "")).startswith("Response "):
            schema["title"] = f"{operation['operationId']}_response"


def _document_create_job(schema: dict[str, Any]) -> None:
    """POST /jobs: say to upload first, show the smallest spec, give working examples."""
    operation = schema.get("paths", {}).get("/jobs", {}).get("post")
    if operation is None:
        return
    operation["description"] = CREATE_JOB_DESCRIPTION
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        body["examples"] = SPEC_EXAMPLES
