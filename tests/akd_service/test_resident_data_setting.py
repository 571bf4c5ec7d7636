"""AKD_RESIDENT_DATA_BYTES reaches the limits the worker hands to run_job."""

from __future__ import annotations

from pathlib import Path

import pytest

from akd_core.limits import Limits
from akd_service.config import Settings


def test_the_setting_reaches_the_worker_limits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AKD_RESIDENT_DATA_BYTES", "0")
    settings = Settings(data_dir=tmp_path)
    assert settings.limits().resident_data_bytes == 0
    assert settings.archive_limits().resident_data_bytes == 0  # what worker/runner.py passes


def test_the_default_is_the_library_default(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).limits().resident_data_bytes == Limits.resident_data_bytes


def test_a_negative_size_is_refused_naming_the_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AKD_RESIDENT_DATA_BYTES", "-1")
    with pytest.raises(ValueError, match="resident_data_bytes"):
        Settings(data_dir=tmp_path)
