"""/docs: POST /jobs says to upload first, shows the smallest spec, and its examples are real
specs (the body "Try it out" pre-fills passes validation once the upload id is pasted in)."""

from __future__ import annotations

from app_support import assert_problem, digits_onnx_bytes, upload_id

from akd_core.spec import parse_spec


def _create_job_operation(client) -> dict:
    return client.get("/openapi.json").json()["paths"]["/jobs"]["post"]


def test_create_job_says_upload_first_and_shows_the_smallest_spec(client):
    op = _create_job_operation(client)
    assert "Upload first" in op["description"] and "POST /uploads" in op["description"]
    assert '"student": {"arch": "cnn-tiny"}' in op["description"]


def test_every_request_body_example_is_a_spec_the_api_accepts(client, enqueued):
    examples = _create_job_operation(client)["requestBody"]["content"]["application/json"]
    values = [e["value"] for e in examples["examples"].values()]
    assert next(iter(examples["examples"])) == "smallest"  # what "Try it out" pre-fills
    assert "additionalProp" not in str(values)
    teacher = upload_id(client, "teacher.onnx", digits_onnx_bytes())
    for value in values:
        parse_spec(value)  # real field names: the spec model accepts it as is
        body = value | {"teacher": value["teacher"] | {"source": f"upload:{teacher}"}}
        assert client.post("/jobs", json=body).status_code == 202, body
    assert len(enqueued) == len(values)


def test_the_example_as_prefilled_says_to_upload_the_teacher(client):
    examples = _create_job_operation(client)["requestBody"]["content"]["application/json"]
    resp = client.post("/jobs", json=examples["examples"]["smallest"]["value"])
    body = assert_problem(resp, 422, "teacher.source")
    assert "POST /uploads" in body["detail"]


def test_a_typo_in_a_submitted_spec_gets_a_did_you_mean(client):
    spec = {"teacher": {"source": f"upload:{upload_id(client, 't.onnx', digits_onnx_bytes())}"},
            "student": {"arch": "mlp"}, "dataset": {"source": "builtin:digits"},
            "anealing": {"tau_max": 2}}  # fmt: skip
    body = assert_problem(client.post("/jobs", json=spec), 422, "anealing")
    assert "did you mean 'annealing'?" in body["detail"]
