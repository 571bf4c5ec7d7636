"""Fixtures: an app on a temporary data dir, given a queue that records what it is sent."""

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
from tests.queue_support import RecordingQueue  # noqa: E402


@pytest.fixture
def queue() -> RecordingQueue:
    """The queue handed to the app under test."""
    return RecordingQueue()


@pytest.fixture
def enqueued(queue: RecordingQueue) -> list[str]:
    """Job ids the API sent to the queue."""
    return queue.sent


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings, queue: RecordingQueue) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a bug must show as a 500 response that tests can see.
    app = create_app(settings, queue)
    with TestClient(app, base_url=LOCAL_URL, raise_server_exceptions=False) as c:
        yield c
