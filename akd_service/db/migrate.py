"""Run the alembic migrations to head; called at API and worker start."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from akd_service.config import Settings
from akd_service.db.session import engine_for_url

APP_DIR = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = APP_DIR / "migrations"
ALEMBIC_INI = APP_DIR / "alembic.ini"
PG_LOCK_KEY = 0x414B44  # "AKD": advisory lock id serialising concurrent upgrades on PostgreSQL


def alembic_config(url: str) -> Config:
    """An alembic Config pointing at the bundled migrations and the given database."""
    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    # The API and the worker start together and both upgrade: serialise them on a lock file
    # next to the database so the second one sees the tables the first created.
    db = make_url(url).database
    if not db or db == ":memory:":
        yield
        return
    lock_path = Path(db).with_name(Path(db).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (idempotent, safe to run concurrently)."""
    url = settings.db_url
    engine = engine_for_url(url)
    cfg = alembic_config(url)
    if engine.dialect.name == "sqlite":
        with _sqlite_file_lock(url), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
