"""The Celery side: robust delivery settings, a torch-free parent, and the thin task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from akd_service import queue
from akd_service.queue import TASK_NAME
from worker.celery_app import VISIBILITY_TIMEOUT_S, celery_app

ROOT = Path(__file__).resolve().parents[2]


def test_messages_survive_worker_death_and_carry_json_only():
    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT_S >= 12 * 3600


def test_the_worker_parent_never_imports_torch():
    # A prefork parent that ran torch before forking hangs its children (DESIGN pitfall).
    code = "import sys, worker.celery_app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_the_task_is_registered_under_the_name_the_api_sends(monkeypatch):
    import worker.tasks as tasks

    assert TASK_NAME == "akd.run_job" and TASK_NAME in celery_app.tasks
    called: list[str] = []
    monkeypatch.setattr(tasks, "execute_job", lambda job_id, worker_id, **_: called.append(job_id))
    assert celery_app.tasks[TASK_NAME].apply(args=["../../etc/passwd"]).get() is None
    assert called == []  # a malformed id never reaches the database
    celery_app.tasks[TASK_NAME].apply(args=["ab" * 16]).get()
    assert called == ["ab" * 16]


def test_names_the_api_and_the_worker_share_are_written_once():
    # The task name and the embedded broker's URL scheme: one definition each, imported by
    # the other side, so the API and the worker cannot drift apart.
    sources = [
        p.read_text() for d in ("akd_service", "app", "worker") for p in (ROOT / d).rglob("*.py")
    ]
    assert sum(s.count('"akd.run_job"') for s in sources) == 1
    assert sum(s.count("redis+socket://") for s in sources) == 1


def test_the_embedded_broker_url_is_the_one_the_settings_name(tmp_path):
    from akd_service.broker import EmbeddedRedis
    from akd_service.config import Settings

    settings = Settings(data_dir=tmp_path)
    redis = EmbeddedRedis(settings.embedded_redis_socket, tmp_path / "redis")
    assert redis.url == settings.effective_broker_url
    assert celery_app.tasks[queue.TASK_NAME].name == queue.TASK_NAME


def test_a_hung_stage_ends_the_pool_process(monkeypatch):
    from worker import tasks

    calls: list[dict] = []
    monkeypatch.setattr(tasks, "execute_job", lambda job_id, worker_id, **kw: calls.append(kw))
    celery_app.tasks[TASK_NAME].run("0" * 32)
    assert calls == [{"settings": celery_app.settings, "on_hang": tasks._end_hung_process}]


def test_the_app_and_its_task_use_the_settings_they_are_built_from(monkeypatch, tmp_path):
    from akd_service.config import Settings
    from worker import tasks
    from worker.celery_app import make_celery

    settings = Settings(data_dir=tmp_path, broker_url="memory://", stale_after_s=99.0)
    app = make_celery(settings)
    assert app.conf.broker_url == "memory://" and app.settings is settings
    seen: list[Settings] = []
    monkeypatch.setattr(
        tasks, "execute_job", lambda job_id, worker_id, **kw: seen.append(kw["settings"])
    )
    app.tasks[TASK_NAME].apply(args=["ab" * 16]).get()
    assert seen == [settings]  # not the process's AKD_* environment
