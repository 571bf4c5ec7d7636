"""Fixtures for the shared service layer: settings on a temporary data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from akd_service.config import Settings
from akd_service.db.migrate import upgrade


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated under tmp_path (the database is created by each test's upgrade)."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a migrated database of each backend (PostgreSQL skips, saying why)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    s = Settings(data_dir=tmp_path / "data", database_url=url)
    s.ensure_dirs()
    upgrade(s)
    return s
