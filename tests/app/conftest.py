"""Fixtures: an app on a temporary data dir and a stubbed queue."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# importlib import mode puts no test folder on sys.path; the helpers module lives here.
sys.path.insert(0, str(Path(__file__).parent))

from app_support import LOCAL_URL, make_settings  # noqa: E402

from akd_service.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Job ids the API sent to the queue (no broker is involved)."""
    sent: list[str] = []
    monkeypatch.setattr("akd_service.queue.enqueue", sent.append)
    return sent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings, enqueued: list[str]) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a bug must show as a 500 response that tests can see.
    with TestClient(create_app(settings), base_url=LOCAL_URL, raise_server_exceptions=False) as c:
        yield c
