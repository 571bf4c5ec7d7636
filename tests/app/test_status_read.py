"""GET /jobs/{id}, the polling read: the Core status read shows what the ORM row shows, as of
the request, on the event loop for SQLite and in the thread pool for a network database."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from app_support import LOCAL_URL, assert_problem, make_settings
from fastapi.testclient import TestClient

from akd_service.config import Settings
from akd_service.db import job_status
from akd_service.db import jobs as job_store
from akd_service.db.migrate import upgrade
from akd_service.db.session import get_engine, queries_inline, session_scope
from app.api import deps
from app.api.routes.jobs import job_public
from app.main import create_app
from tests.queue_support import RecordingQueue

METRICS = {"student_accuracy": 0.93, "teacher_accuracy": 0.97, "parity": math.nan}


def _finished_job(settings: Settings, owner: str = "local", metrics: Any = METRICS) -> str:
    """A succeeded job of `owner` with metrics (one NaN) and artifacts: every field set."""
    with session_scope(settings) as s:
        job_id = job_store.create_job(s, owner, {"student": {"arch": "mlp"}, "seed": 7}, 3).id
    with session_scope(settings) as s:
        assert job_store.claim_job(s, job_id, "w1", 60) is not None
        assert job_store.set_progress(s, job_id, "w1", phase="exporting", progress=0.9)
        assert job_store.finish_job(s, job_id, "w1", "succeeded", metrics=metrics,
                                    artifacts=["student.onnx", "report.json"])  # fmt: skip
    return job_id


def _orm_view(settings: Settings, job_id: str) -> dict[str, Any]:
    """The status document built from the ORM row (what GET /jobs/{id} answered before)."""
    with session_scope(settings) as s:
        job = job_store.get_job(s, job_id)
        assert job is not None
        return job_public(job).model_dump(mode="json")


@pytest.fixture
def reads_on_loop(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Per status read: True when it ran on the event loop's thread, False in a pool thread."""
    seen: list[bool] = []
    real = job_status.job_status_for_owner

    def recording(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:  # no loop in this thread: a thread-pool worker
            seen.append(False)
        return real(*args)

    monkeypatch.setattr(job_status, "job_status_for_owner", recording)
    return seen


def test_sqlite_status_read_runs_on_the_loop_and_shows_the_orm_rows_values(
    client, settings, reads_on_loop
):
    job_id = _finished_job(settings)
    r = client.get(f"/jobs/{job_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body == _orm_view(settings, job_id)
    assert body["state"] == "succeeded" and body["phase"] == "exporting"
    shown = {name: body["metrics"][name] for name in METRICS}  # NaN is not JSON: null
    assert shown == {"student_accuracy": 0.93, "teacher_accuracy": 0.97, "parity": None}
    assert body["links"]["artifacts"]["report.json"] == f"/jobs/{job_id}/artifacts/report.json"
    assert body["spec"]["seed"] == 7 and body["created_at"].endswith("Z")
    assert reads_on_loop == [True]  # no thread-pool hop for a local SQLite file


def test_the_threaded_path_answers_byte_for_byte_the_same(
    client, settings, reads_on_loop, monkeypatch
):
    job_id = _finished_job(settings)
    inline = client.get(f"/jobs/{job_id}")
    monkeypatch.setattr(deps, "queries_inline", lambda _settings: False)
    threaded = client.get(f"/jobs/{job_id}")
    assert threaded.status_code == inline.status_code == 200
    assert threaded.content == inline.content
    assert threaded.headers["content-type"] == inline.headers["content-type"]
    assert reads_on_loop == [True, False]
    assert_problem(client.get(f"/jobs/{'f' * 32}"), 404)  # 404 from a pool thread too


def test_only_a_sqlite_database_is_queried_on_the_loop(tmp_path):
    assert queries_inline(Settings(data_dir=tmp_path))
    network = "postgresql+psycopg://akd@db.example:5432/akd"
    assert not queries_inline(Settings(data_dir=tmp_path, database_url=network))


def test_a_status_read_shows_the_row_as_of_the_request(client, settings):
    with session_scope(settings) as s:
        job_id = job_store.create_job(s, "local", {"student": {"arch": "mlp"}}, 3).id
    assert client.get(f"/jobs/{job_id}").json()["state"] == "queued"
    with session_scope(settings) as s:
        job_store.claim_job(s, job_id, "w1", 60)
        job_store.set_progress(s, job_id, "w1", phase="annealing", progress=0.25)
    now = client.get(f"/jobs/{job_id}").json()
    assert (now["state"], now["phase"], now["progress"], now["attempt"]) == (
        "running", "annealing", 0.25, 1,
    )  # fmt: skip


def test_the_status_columns_of_another_owners_job_are_not_read(settings):
    upgrade(settings)
    job_id = _finished_job(settings, owner="alice")
    engine = get_engine(settings)
    assert job_status.job_status_for_owner(engine, job_id, "bob") is None
    assert job_status.job_status_for_owner(engine, "f" * 32, "alice") is None
    row = job_status.job_status_for_owner(engine, job_id, "alice")
    assert row is not None and row.state == "succeeded" and row.artifacts[0] == "student.onnx"


@pytest.fixture
def pg_client(postgres_url, tmp_path) -> Iterator[tuple[TestClient, Settings]]:
    """An app on a fresh PostgreSQL database."""
    settings = make_settings(tmp_path, database_url=postgres_url)
    app = create_app(settings, RecordingQueue())
    with TestClient(app, base_url=LOCAL_URL, raise_server_exceptions=False) as c:
        yield c, settings


def test_postgres_status_read_runs_in_the_pool_with_the_same_document(pg_client, reads_on_loop):
    client, settings = pg_client
    # PostgreSQL's JSON type refuses NaN (a worker-side matter, not this read's).
    finite = {"student_accuracy": 0.93, "teacher_accuracy": 0.97}
    job_id = _finished_job(settings, metrics=finite)
    theirs = _finished_job(settings, owner="someone-else", metrics=finite)
    body = client.get(f"/jobs/{job_id}").json()
    assert body == _orm_view(settings, job_id)
    assert body["metrics"]["student_accuracy"] == 0.93 and body["phase"] == "exporting"
    assert body["created_at"].endswith("Z")  # aware UTC as on SQLite
    assert assert_problem(client.get(f"/jobs/{theirs}"), 404)["type"].endswith("job-not-found")
    assert reads_on_loop == [False, False]  # a network database never blocks the loop
