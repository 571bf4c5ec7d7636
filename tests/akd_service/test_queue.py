"""enqueue sends only the job id, by task name, as JSON."""

from __future__ import annotations

import json

import pytest
from kombu import Connection

from akd_service import queue
from akd_service.config import get_settings


@pytest.fixture
def memory_broker(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("AKD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AKD_BROKER_URL", "memory://")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_enqueue_sends_the_job_id_by_task_name(memory_broker):
    queue.enqueue("abc123")
    with Connection("memory://") as conn:
        message = conn.SimpleQueue("celery").get(timeout=5)
        assert message.headers["task"] == queue.TASK_NAME
        assert message.content_type == "application/json"
        args, kwargs, _ = json.loads(message.body)
        assert args == ["abc123"] and kwargs == {}
        message.ack()
