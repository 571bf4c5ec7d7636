"""Engines and sessions; SQLite runs in WAL mode with a busy timeout since API and workers share it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from akd_service.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _finite(value: Any) -> Any:
    """The value with every NaN or infinite float (at any depth) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """JSON for the database's JSON columns: strict JSON, non-finite numbers as null.

    json.dumps writes NaN and Infinity, which PostgreSQL refuses (a job whose worker reported
    a NaN metric could not finish) and which SQLite stores but no JSON client can read.
    """
    return json.dumps(_finite(value), allow_nan=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (the API) run while a writer (a worker) commits; the busy timeout makes
    # a second writer wait for the lock instead of failing at once with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@lru_cache(maxsize=16)
def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


@lru_cache(maxsize=16)
def engine_for_url(url: str) -> Engine:
    """One engine per database URL (cached: engines own connection pools)."""
    sqlite = _is_sqlite(url)
    # A database server may drop idle connections, so check them on checkout; a SQLite file
    # cannot, and the check would add a query to every request.
    kwargs: dict[str, Any] = {"pool_pre_ping": not sqlite, "json_serializer": json_dumps}
    if sqlite:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # FastAPI runs sync endpoints in a thread pool, so connections cross threads.
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, **kwargs)


def get_engine(settings: Settings) -> Engine:
    """The engine of the settings' database."""
    return engine_for_url(settings.db_url)


def queries_inline(settings: Settings) -> bool:
    """True when a short read may run on the API's event loop: a SQLite file, not a server.

    A SQLite read of one row is a local file access of about 0.1 ms (in WAL mode readers do
    not wait for writers), cheaper than the thread-pool hop around it; a network database
    may take a round trip of any length, which must not stall every request on the loop.
    """
    return _is_sqlite(settings.db_url)


@lru_cache(maxsize=16)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for_url(url), expire_on_commit=False)


def SessionLocal(settings: Settings) -> Session:  # noqa: N802 - reads as a class
    """A new session on the settings' database."""
    return _factory(settings.db_url)()


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = SessionLocal(settings)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rows_changed(result: object) -> int:
    """How many rows an UPDATE or DELETE matched (Session.execute types it as a plain Result)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the result of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount
