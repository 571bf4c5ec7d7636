"""AKD_DEVICES_PER_JOB: each pool child is pinned to that many cards, and its jobs use them."""

from __future__ import annotations

import logging

from akd_service.config import Settings
from akd_service.gpus import gpu_for_child, pin_child
from tests.worker.test_runner import FakeRun
from worker.runner import execute_job

CARDS = ["0", "1", "2", "3"]


def test_two_devices_per_job_give_each_child_its_own_pair_of_cards():
    assert [gpu_for_child(i, CARDS, per_child=2) for i in range(2)] == ["0,1", "2,3"]
    env: dict[str, str] = {}
    assert pin_child(1, CARDS, env, per_child=2) == "2,3"
    assert env == {"CUDA_VISIBLE_DEVICES": "2,3"}


def test_a_child_beyond_the_cards_shares_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="akd_service.gpus"):
        assert pin_child(2, CARDS, {}, per_child=2) == "0,1"
    assert "more children" in caplog.text
    assert gpu_for_child(0, ["0"], per_child=2) == "0"  # never the same card twice


def test_the_worker_runs_each_job_on_the_configured_device_count(settings, make_job):
    job_id = make_job()
    run = FakeRun()
    wide = Settings(**{**settings.model_dump(), "devices_per_job": 2})
    assert execute_job(job_id, "w1", settings=wide, run_job=run) == "succeeded"
    assert run.calls[0]["devices"] == 2
