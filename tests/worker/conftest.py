"""Fixtures for worker tests: a migrated database (SQLite, and PostgreSQL where it starts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from akd_service.config import Settings
from akd_service.db import jobs as jobs_db
from akd_service.db.migrate import upgrade
from akd_service.db.session import session_scope

SPEC: dict[str, Any] = {
    "teacher": {"source": "upload:0123abcd", "format": "onnx"},
    "student": {"arch": "mlp"},
    "dataset": {"source": "builtin:digits"},
    "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a fresh database of each backend, with fast heartbeats for lease tests.

    The PostgreSQL variant skips, printing why, where no cluster could be started.
    """
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    s = Settings(data_dir=tmp_path / "data", database_url=url, heartbeat_s=0.1, stale_after_s=3.0)
    s.ensure_dirs()
    upgrade(s)
    return s


@pytest.fixture
def make_job(settings: Settings) -> Callable[..., str]:
    """Create a queued job and return its id."""

    def make(
        spec: dict[str, Any] | None = None, owner: str = "local", max_attempts: int = 3
    ) -> str:
        with session_scope(settings) as session:
            return jobs_db.create_job(session, owner, spec or SPEC, max_attempts).id

    return make
