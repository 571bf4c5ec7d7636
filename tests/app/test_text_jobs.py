"""A text job over the API: a zipped transformers teacher and a jsonl upload are checked at
POST /jobs (member by member), run by the worker, and ship tokenizer.zip and student_hf.zip."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from app_support import assert_problem, upload_id
from sqlalchemy import func, select

from akd_service.db.models import Job
from akd_service.db.session import session_scope
from tests.akd_core.text_support import copy_teacher, text_rows, trained_teacher, zip_folder


def _zip_bytes(folder, tmp_path) -> bytes:
    return zip_folder(folder, tmp_path / "teacher.zip").read_bytes()


def _spec(teacher_id: str, data_id: str, arch: str = "shrink-teacher") -> dict:
    return {
        "teacher": {"source": f"upload:{teacher_id}"},
        "student": {"arch": arch},
        "dataset": {"source": f"upload:{data_id}", "max_length": 32},
        "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1},
        "device": "cpu",
    }


def _jobs(settings) -> int:
    with session_scope(settings) as s:
        return int(s.execute(select(func.count()).select_from(Job)).scalar_one())


@pytest.fixture
def data_id(client) -> str:
    rows = "".join(json.dumps(r) + "\n" for r in text_rows(120))
    return upload_id(client, "train.jsonl", rows.encode())


@pytest.mark.slow
def test_a_text_job_runs_and_ships_the_tokenizer_and_the_hf_student(
    client, settings, enqueued, data_id, tmp_path
):
    from worker.runner import execute_job

    teacher_id = upload_id(client, "teacher.zip", _zip_bytes(trained_teacher(), tmp_path))
    r = client.post("/jobs", json=_spec(teacher_id, data_id))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["spec"]["teacher"]["format"] == "hf" and job["spec"]["dataset"]["format"] == "jsonl"
    assert execute_job(job["id"], "w1", settings=settings) == "succeeded"
    done = client.get(f"/jobs/{job['id']}").json()
    assert {"student.onnx", "tokenizer.zip", "student_hf.zip"} <= set(done["artifacts"])
    tok = client.get(f"/jobs/{job['id']}/artifacts/tokenizer.zip")
    assert tok.status_code == 200
    assert "tokenizer.json" in zipfile.ZipFile(io.BytesIO(tok.content)).namelist()
    assert done["metrics"]["student_accuracy"] > 0.9


def test_pickled_weights_in_an_hf_upload_are_a_422_naming_the_teacher(
    client, settings, data_id, tmp_path
):
    folder = copy_teacher(tmp_path / "t")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    teacher_id = upload_id(client, "teacher.zip", _zip_bytes(folder, tmp_path))
    body = assert_problem(
        client.post("/jobs", json=_spec(teacher_id, data_id)), 422, "teacher.source"
    )
    assert "pytorch_model.bin" in body["detail"] and "safe_serialization=True" in body["detail"]
    assert _jobs(settings) == 0


def test_an_hf_teacher_with_an_image_student_is_a_422(client, settings, data_id, tmp_path):
    teacher_id = upload_id(client, "teacher.zip", _zip_bytes(trained_teacher(), tmp_path))
    body = assert_problem(
        client.post("/jobs", json=_spec(teacher_id, data_id, arch="mlp")), 422, "student.arch"
    )
    assert "'bert' or 'shrink-teacher'" in body["detail"]
    missing = {**_spec(teacher_id, data_id), "dataset": {"source": f"upload:{data_id}",
                                                         "test_source": "upload:nope"}}  # fmt: skip
    assert_problem(client.post("/jobs", json=missing), 422, "dataset.test_source")
    assert _jobs(settings) == 0


def test_an_onnx_text_teacher_zip_is_checked_member_by_member_at_post_jobs(
    client, settings, data_id, tmp_path
):
    from tests.akd_core.text_support import onnx_teacher_folder

    folder = onnx_teacher_folder(tmp_path / "onnx_teacher")
    teacher_id = upload_id(client, "teacher.zip", _zip_bytes(folder, tmp_path))
    spec = {**_spec(teacher_id, data_id, arch="bert"),
            "teacher": {"source": f"upload:{teacher_id}", "format": "onnx"}}  # fmt: skip
    r = client.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["teacher"]["format"] == "onnx"
    shrink = {**spec, "student": {"arch": "shrink-teacher"}}
    body = assert_problem(client.post("/jobs", json=shrink), 422, "student.arch")
    assert "use student.arch 'bert'" in body["detail"]
    (folder / "weights.pkl").write_bytes(b"\x80\x04K\x01.")
    evil_id = upload_id(client, "evil.zip", _zip_bytes(folder, tmp_path))
    evil = {**spec, "teacher": {"source": f"upload:{evil_id}", "format": "onnx"}}
    body = assert_problem(client.post("/jobs", json=evil), 422, "teacher.source")
    assert "weights.pkl" in body["detail"] and "pickled" in body["detail"]
    bare_id = upload_id(client, "model.onnx", (folder / "model.onnx").read_bytes())
    bare = {**spec, "teacher": {"source": f"upload:{bare_id}", "format": "onnx"}}
    body = assert_problem(client.post("/jobs", json=bare), 422, "teacher.source")
    assert "tokenizer" in body["detail"] and "zip or tar" in body["detail"]
    assert _jobs(settings) == 1


@pytest.mark.slow
def test_a_hub_model_id_is_accepted_and_loaded_from_the_workers_offline_hub_cache(
    client, settings, enqueued, data_id, tmp_path, monkeypatch
):
    from tests.akd_core.text_support import hub_cache, offline_hub
    from worker.runner import execute_job

    offline_hub(monkeypatch, hub_cache(tmp_path / "hub", "someorg/tiny-bert", trained_teacher()))
    spec = {**_spec("x", data_id), "teacher": {"source": "hf:someorg/tiny-bert"}}
    r = client.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["spec"]["teacher"] == {**job["spec"]["teacher"], "format": "hf",
                                      "source": "hf:someorg/tiny-bert"}  # fmt: skip
    state = execute_job(job["id"], "w1", settings=settings)
    done = client.get(f"/jobs/{job['id']}").json()
    assert state == "succeeded", done["failure_reason"]
    assert done["metrics"]["student_accuracy"] > 0.9 and "student_hf.zip" in done["artifacts"]
    # Not in the cache and no hub: the job fails with a sentence naming the model and the cure.
    missing = {**spec, "teacher": {"source": "hf:someorg/not-cached"}}
    job2 = client.post("/jobs", json=missing).json()
    assert execute_job(job2["id"], "w1", settings=settings) == "failed"
    reason = client.get(f"/jobs/{job2['id']}").json()["failure_reason"]
    assert "teacher.source" in reason and "'someorg/not-cached' is not available here" in reason


def test_a_hub_model_id_needs_a_text_student_and_format_hf(client, settings, data_id):
    spec = {**_spec("x", data_id, arch="mlp"), "teacher": {"source": "hf:someorg/tiny-bert"}}
    body = assert_problem(client.post("/jobs", json=spec), 422, "student.arch")
    assert "'bert' or 'shrink-teacher'" in body["detail"]
    onnx = {**_spec("x", data_id), "teacher": {"source": "hf:org/m", "format": "onnx"}}
    assert "format 'hf'" in assert_problem(client.post("/jobs", json=onnx), 422,
                                           "teacher.format")["detail"]  # fmt: skip
    assert _jobs(settings) == 0
