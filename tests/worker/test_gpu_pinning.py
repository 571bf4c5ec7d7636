"""One GPU per Celery pool child, chosen before torch loads; checked on this CPU host."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import billiard
import pytest
from billiard.process import current_process
from celery.concurrency.prefork import process_initializer

from akd_service.config import Settings
from akd_service.gpus import gpu_for_child, pin_child, worker_gpus
from worker.celery_app import make_celery


@pytest.mark.parametrize("index, card", [(0, "0"), (1, "1"), (2, "2"), (3, "3")])
def test_each_of_four_children_sees_only_its_own_card(index, card):
    env: dict[str, str] = {}
    assert pin_child(index, worker_gpus("0,1,2,3", env={}), env) == card
    assert env == {"CUDA_VISIBLE_DEVICES": card}


def test_a_configured_list_is_followed_in_order_and_uuids_are_kept():
    gpus = worker_gpus(" 6, 4,GPU-8f2a ", env={})
    assert [gpu_for_child(i, gpus) for i in range(3)] == ["6", "4", "GPU-8f2a"]


def test_more_children_than_cards_share_round_robin_and_say_so(caplog):
    env: dict[str, str] = {}
    with caplog.at_level(logging.WARNING, logger="akd_service.gpus"):
        assert pin_child(2, ["0", "1"], env) == "0"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert "more children (--concurrency) than GPUs" in caplog.text


def test_a_cpu_host_pins_nothing():
    env: dict[str, str] = {}
    assert pin_child(0, [], env) is None and env == {}


def test_without_akd_gpus_the_inherited_list_then_the_driver_decides(tmp_path, monkeypatch):
    assert worker_gpus(None, env={"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    proc = tmp_path / "gpus"
    for bus in ("0000:17:00.0", "0000:65:00.0", "0000:ca:00.0"):
        (proc / bus).mkdir(parents=True)
    monkeypatch.setattr("akd_service.gpus.NVIDIA_PROC_GPUS", proc)
    assert worker_gpus(None, env={}) == ["0", "1", "2"]


def test_a_malformed_akd_gpus_is_refused_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match="gpus"):
        Settings(data_dir=tmp_path, gpus="0;1")


def _report_card(out_dir: str, app: object) -> None:
    """Pool initializer: Celery's own child setup, then record what this child sees."""
    process_initializer(app, "gpu-test@host")
    seen = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    index = current_process().index
    Path(out_dir, f"child-{index}").write_text(seen)


def test_real_pool_children_of_the_worker_app_each_get_their_card(tmp_path):
    app = make_celery(Settings(data_dir=tmp_path, broker_url="memory://", gpus="5,7"))
    out = tmp_path / "seen"
    out.mkdir()
    pool = billiard.Pool(2, initializer=_report_card, initargs=(str(out), app))
    try:
        deadline = time.monotonic() + 60
        while len(list(out.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pool.terminate()
    assert {p.name: p.read_text() for p in out.iterdir()} == {"child-0": "5", "child-1": "7"}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ or os.environ["CUDA_VISIBLE_DEVICES"] != "5"
