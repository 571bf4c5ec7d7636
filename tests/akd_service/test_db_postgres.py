"""The schema on PostgreSQL: 64-bit sizes and event ids, migrated in place from 0001."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import select, text

from akd_service.config import GIB, Settings
from akd_service.db import jobs as job_store
from akd_service.db.migrate import alembic_config, upgrade
from akd_service.db.models import Event, Upload
from akd_service.db.session import session_scope


def _upload(upload_id: str, size: int) -> Upload:
    return Upload(id=upload_id, owner="local", filename="big.npz", size=size,
                  sha256="0" * 64, path=f"{upload_id}/big.npz", kind="npz")  # fmt: skip


def test_sizes_and_event_ids_past_2_to_31_survive_the_upgrade(postgres_url, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    upgrade(settings, "0001")  # a database made by the previous release, with data in it
    with session_scope(settings) as s:
        s.execute(text("INSERT INTO uploads (id, owner, filename, size, sha256, path, kind, "
                       "created_at) VALUES ('old', 'local', 'a.npz', 100, :h, 'old/a.npz', "
                       "'npz', now())"), {"h": "0" * 64})  # fmt: skip
    upgrade(settings)
    three_gib = 3 * GIB  # over the 2 GiB default cap's int32 range, as a raised cap allows
    with session_scope(settings) as s:
        s.add(_upload("big", three_gib))
        job = job_store.create_job(s, "local", {}, 3)
        # As if 2^31 events had been written already: the next id no longer fits an int32.
        s.execute(text("SELECT setval('events_id_seq', :v)"), {"v": 2**31 + 5})
        ev = job_store.add_event(s, job.id, "log", {"message": "x"})
    with session_scope(settings) as s:
        sizes = dict(s.execute(select(Upload.id, Upload.size)).all())
        assert sizes == {"old": 100, "big": three_gib}
        assert ev.id > 2**31
        assert [e.id for e in job_store.events_after(s, job.id, 2**31)] == [ev.id]
        assert s.execute(select(Event.id).where(Event.id == ev.id)).scalar_one() == ev.id


def test_the_upgrade_is_idempotent_and_reversible(postgres_url, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    upgrade(settings)
    upgrade(settings)  # API and worker both upgrade at start: the second is a no-op
    with session_scope(settings) as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"
        kinds = dict(s.execute(text(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE (table_name, column_name) IN (('uploads', 'size'), ('events', 'id'))"
        )).all())  # fmt: skip
    assert kinds == {"uploads.size": "bigint", "events.id": "bigint"}
    command.downgrade(alembic_config(postgres_url), "0001")
    upgrade(settings)  # and back up again, as an operator rolling back and forth would
