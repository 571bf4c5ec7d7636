"""API keys: 401 without a valid key, and each key sees only its own jobs and uploads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_support import (
    LOCAL_URL,
    assert_problem,
    digits_onnx_bytes,
    make_settings,
    onnx_bytes,
    upload,
)
from fastapi.testclient import TestClient

from akd_service.db.models import ApiKey
from akd_service.db.session import session_scope
from akd_service.keys import create_key, revoke_key, verify_key
from app.main import create_app


@pytest.fixture
def keyed(tmp_path, queue) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = make_settings(tmp_path, require_keys=True)
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        with session_scope(settings) as s:
            _, alice = create_key(s, "alice")
            _, bob = create_key(s, "bob")
            revoked_id, revoked = create_key(s, "old")
            revoke_key(s, revoked_id)
        yield client, {"alice": alice, "bob": bob, "revoked": revoked, "settings": settings}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_missing_wrong_and_revoked_keys_get_401(keyed):
    client, keys = keyed
    for headers in ({}, _auth("akd_wrong"), _auth(keys["revoked"]), {"Authorization": "Basic x"}):
        r = client.get("/jobs", headers=headers)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(upload(client, "t.onnx", onnx_bytes()), 401)
    assert client.get("/jobs", headers=_auth(keys["alice"])).status_code == 200


def test_public_routes_need_no_key(keyed):
    client, _ = keyed
    for path in ("/healthz", "/docs", "/redoc", "/openapi.json", "/static/redoc/LICENSE"):
        assert client.get(path).status_code == 200, path


def test_another_keys_job_and_upload_are_invisible(keyed):
    client, keys = keyed
    tid = upload(client, "t.onnx", digits_onnx_bytes(), headers=_auth(keys["alice"])).json()["id"]
    spec = {
        "teacher": {"source": f"upload:{tid}"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
    }
    r = client.post("/jobs", json=spec, headers=_auth(keys["alice"]))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    bob = _auth(keys["bob"])
    assert_problem(client.get(f"/jobs/{job_id}", headers=bob), 404)
    assert_problem(client.post(f"/jobs/{job_id}/cancel", headers=bob), 404)
    assert_problem(client.get(f"/jobs/{job_id}/events", headers=bob), 404)
    assert client.get("/jobs", headers=bob).json()["items"] == []
    # Bob cannot build a job on Alice's upload either.
    assert_problem(client.post("/jobs", json=spec, headers=bob), 422, field="teacher.source")
    assert client.get(f"/jobs/{job_id}", headers=_auth(keys["alice"])).status_code == 200


def test_keys_are_stored_only_as_hashes(keyed):
    _, keys = keyed
    with session_scope(keys["settings"]) as s:
        rows = s.query(ApiKey).all()
        assert len(rows) == 3
        assert all(keys["alice"] not in (r.key_hash, r.id, r.name) for r in rows)
        assert verify_key(s, keys["alice"]) is not None
        assert verify_key(s, keys["revoked"]) is None
