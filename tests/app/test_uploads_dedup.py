"""POST /uploads keeps one stored copy of identical bytes per owner (migration 0003's index)."""

from __future__ import annotations

from pathlib import Path

from app_support import LOCAL_URL, make_settings, npz_bytes, onnx_bytes, upload
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from akd_service.config import Settings
from akd_service.db.migrate import upgrade
from akd_service.db.models import Upload
from akd_service.db.session import session_scope
from akd_service.keys import create_key
from app.main import create_app


def _stored(uploads_root: Path) -> list[str]:
    return sorted(p.name for p in uploads_root.iterdir() if p.is_dir())


def test_the_same_bytes_twice_return_the_first_upload_and_store_one_copy(client, settings):
    first = upload(client, "teacher.onnx", onnx_bytes())
    again = upload(client, "renamed.onnx", onnx_bytes())
    assert first.status_code == again.status_code == 201
    assert first.json()["reused"] is False
    assert again.json() == first.json() | {"reused": True}
    other = upload(client, "data.npz", npz_bytes())
    assert other.json()["id"] != first.json()["id"]
    assert _stored(settings.uploads) == sorted([first.json()["id"], other.json()["id"]])
    with session_scope(settings) as s:
        assert len(s.scalars(select(Upload)).all()) == 2


def test_a_deleted_file_is_stored_again_rather_than_reused(client, settings):
    first = upload(client, "teacher.onnx", onnx_bytes()).json()
    for f in (settings.uploads / first["id"]).iterdir():
        f.unlink()
    again = upload(client, "teacher.onnx", onnx_bytes()).json()
    assert again["id"] != first["id"] and again["reused"] is False
    assert (settings.uploads / again["id"]).is_dir()


def test_identical_bytes_of_another_owner_are_never_shared(tmp_path, queue):
    settings = make_settings(tmp_path, require_keys=True)
    with TestClient(create_app(settings, queue), base_url=LOCAL_URL) as client:
        with session_scope(settings) as s:  # the app's start migrated the database
            headers = [
                {"Authorization": f"Bearer {create_key(s, name)[1]}"} for name in ("alice", "bob")
            ]
        ids = [upload(client, "t.onnx", onnx_bytes(), headers=h).json() for h in headers]
    assert ids[0]["id"] != ids[1]["id"]
    assert not ids[1]["reused"]


def _indexes(settings: Settings) -> dict[str, list[str]]:
    with session_scope(settings) as s:
        found = inspect(s.connection()).get_indexes("uploads")
    return {ix["name"]: ix["column_names"] for ix in found}


def _check_migration_0003(settings: Settings) -> None:
    from alembic import command

    from akd_service.db.migrate import alembic_config

    upgrade(settings, "0002")
    assert "ix_uploads_owner_sha256" not in _indexes(settings)
    upgrade(settings)
    assert _indexes(settings)["ix_uploads_owner_sha256"] == ["owner", "sha256"]
    command.downgrade(alembic_config(settings.db_url), "0002")
    assert "ix_uploads_owner_sha256" not in _indexes(settings)
    upgrade(settings)  # and back up, as an operator rolling back and forth would


def test_migration_0003_adds_the_owner_sha256_index_and_reverts_on_sqlite(tmp_path):
    _check_migration_0003(make_settings(tmp_path))


def test_migration_0003_adds_the_owner_sha256_index_and_reverts_on_postgres(postgres_url, tmp_path):
    _check_migration_0003(Settings(data_dir=tmp_path, database_url=postgres_url))
