"""Fixtures for the shared service layer: settings on a temporary data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from akd_service.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated under tmp_path (the database is created by each test's upgrade)."""
    return Settings(data_dir=tmp_path / "data")
