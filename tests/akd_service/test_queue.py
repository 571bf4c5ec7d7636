"""The Celery queue sends only the job id, by task name, as JSON, to the broker it is given."""

from __future__ import annotations

import json

from kombu import Connection

from akd_service.config import Settings
from akd_service.queue import TASK_NAME, CeleryQueue, Queue


def test_enqueue_sends_the_job_id_by_task_name():
    queue: Queue = CeleryQueue("memory://")
    queue.enqueue("abc123")
    with Connection("memory://") as conn:
        message = conn.SimpleQueue("celery").get(timeout=5)
        assert message.headers["task"] == TASK_NAME
        assert message.content_type == "application/json"
        args, kwargs, _ = json.loads(message.body)
        assert args == ["abc123"] and kwargs == {}
        message.ack()


def test_the_queue_built_from_settings_uses_their_broker(tmp_path):
    named = Settings(data_dir=tmp_path, broker_url="redis://broker.example:6379/0")
    assert CeleryQueue.from_settings(named).broker_url == "redis://broker.example:6379/0"
    embedded = Settings(data_dir=tmp_path)  # no broker_url: the embedded server's socket
    assert CeleryQueue.from_settings(embedded).broker_url == embedded.effective_broker_url
    assert str((tmp_path / "redis.sock").resolve()) in embedded.effective_broker_url
