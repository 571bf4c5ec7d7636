"""The service as users meet it: real uvicorn, Celery workers and Redis, over HTTP."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import (
    BOTH_DATABASES,
    ENDLESS_SPEC,
    QUICK_SPEC,
    SLOW_SPEC,
    Stack,
    system_redis,
    wait_for,
)
from tests.report_contract import assert_report_follows_contract

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def spec_with(base: dict[str, Any], teacher: Path) -> dict[str, Any]:
    return base | {"teacher": {"source": f"file:{teacher}"}}


def onnx_test_accuracy(model: Path) -> float:
    import onnxruntime as ort

    from akd_core.data import load_dataset
    from akd_core.spec import DatasetSpec

    ds = load_dataset(DatasetSpec(source="builtin:digits"), None, 0)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: ds.x_test.astype(np.float32)})[0]
    return float((logits.argmax(1) == ds.y_test).mean())


@pytest.mark.parametrize("broker", ["embedded", "redis-server"])
def test_job_runs_end_to_end_over_http(make_stack, digits_teacher, tmp_path, broker):
    binary = system_redis() if broker == "redis-server" else None
    stack: Stack = make_stack(redis_binary=binary, tcp_redis=broker == "redis-server")
    stack.start_api()
    stack.start_worker()
    with stack.client() as client:
        job = client.submit(spec_with(QUICK_SPEC, digits_teacher))
        seen: list[dict[str, Any]] = []
        final = client.wait(job["id"], on_event=seen.append, timeout_s=180)
        assert final["state"] == "succeeded", final.get("failure_reason")
        assert [e["epoch"] for e in seen if e.get("kind") == "epoch"] == [1, 2, 1]
        assert "student.onnx" in final["artifacts"] and "report.json" in final["artifacts"]
        paths = client.download_all(job["id"], tmp_path / "out")
    assert {p.name for p in paths} == set(final["artifacts"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert_report_follows_contract(report)
    acc = onnx_test_accuracy(tmp_path / "out" / "student.onnx")
    assert acc == pytest.approx(report["student"]["accuracy"], abs=0.01)
    assert acc > 0.5


@BOTH_DATABASES
def test_worker_killed_mid_job_resumes_from_its_checkpoint(make_stack, digits_teacher):
    stack: Stack = make_stack()
    stack.start_api()
    stack.start_worker("w1")
    stack.start_reaper()
    with stack.client() as client:
        job_id = client.submit(spec_with(SLOW_SPEC, digits_teacher))["id"]
        wait_for(lambda: stack.reached_epoch(job_id, 2), 120, "epoch 2 of the first attempt")
        assert client.status(job_id)["state"] == "running"
        stack.kill("w1")  # SIGKILL to the worker and its pool child: no chance to clean up
        stack.start_worker("w2")
        final = client.wait(job_id, timeout_s=180)
        assert final["state"] == "succeeded", final.get("failure_reason")
        assert final["attempt"] == 2
    events = stack.events(job_id)
    # One lease owner at a time: once attempt 2 reports, attempt 1 never does again.
    attempts = [e["attempt"] for e in events if "attempt" in e]
    assert attempts == sorted(attempts) and attempts[-1] == 2
    starts = [e for e in events if e["event"] == "log" and "started" in e.get("message", "")]
    assert [(s["attempt"], s["worker"].split("@")[0]) for s in starts] == [(1, "w1"), (2, "w2")]
    # Resumed, not restarted: attempt 2's first annealing epoch continues after the last one.
    first = {e["attempt"]: e for e in reversed(events) if e["event"] == "epoch"}
    assert first[2]["phase"] > 1 or first[2]["epoch"] > 1


@BOTH_DATABASES
def test_cancel_a_queued_and_a_running_job(make_stack, digits_teacher):
    stack: Stack = make_stack()
    stack.start_api()
    with stack.client() as client:
        queued = client.submit(spec_with(SLOW_SPEC, digits_teacher))["id"]
        client.cancel(queued)
        assert client.status(queued)["state"] == "cancelled"
        stack.start_worker()
        running = client.submit(spec_with(ENDLESS_SPEC, digits_teacher))["id"]
        wait_for(lambda: stack.reached_epoch(running, 1), 120, "the job to train")
        client.cancel(running)
        final = client.wait(running, timeout_s=30)
        assert final["state"] == "cancelled"
        # The queued job's message reached the worker later: it was dropped, not run.
        assert client.status(queued)["attempt"] == 0


@BOTH_DATABASES
def test_api_restart_mid_job_loses_nothing(make_stack, digits_teacher):
    stack: Stack = make_stack()
    stack.start_api()
    stack.start_worker()
    with stack.client() as client:
        job_id = client.submit(spec_with(SLOW_SPEC, digits_teacher))["id"]
        wait_for(lambda: stack.reached_epoch(job_id, 1), 120, "the job to train")
        before = [e["id"] for e in stack.events(job_id)]  # recorded before the API went away
        stack.kill("api", signal.SIGTERM)
        stack.start_api()
        final = client.wait(job_id, timeout_s=180)
        assert final["state"] == "succeeded", final.get("failure_reason")
        # A replay over the restarted API, from the very first event.
        after = [e["id"] for e in client.events(job_id, last_event_id=0) if e["event"] != "end"]
    assert after[: len(before)] == before  # replay from the start still has every event
    assert final["attempt"] == 1  # the worker never noticed


@BOTH_DATABASES
def test_workers_racing_for_duplicate_messages_run_each_job_once(make_stack, digits_teacher):
    # Two workers and three messages per job: the claim's compare-and-set, on the real
    # database, must hand each job to exactly one of them, exactly once.
    stack: Stack = make_stack()
    stack.start_api()
    stack.start_worker("w1")
    stack.start_worker("w2")
    with stack.client() as client:
        jobs = [client.submit(spec_with(QUICK_SPEC, digits_teacher))["id"] for _ in range(3)]
        for job_id in jobs:
            stack.send(job_id)
            stack.send(job_id)
        finals = [client.wait(job_id, timeout_s=240) for job_id in jobs]
    assert [(f["state"], f["attempt"]) for f in finals] == [("succeeded", 1)] * 3
    for job_id in jobs:
        events = stack.events(job_id)
        starts = [e for e in events if e["event"] == "log" and "started" in e.get("message", "")]
        assert len(starts) == 1, starts
        assert [e["state"] for e in events if e["event"] == "state"] == [
            "queued", "running", "succeeded"]  # fmt: skip


def test_bad_input_is_refused_and_the_service_keeps_serving(make_stack, digits_teacher, tmp_path):
    stack: Stack = make_stack(max_upload_bytes=1_000_000)
    stack.start_api()
    stack.start_worker()
    marker = tmp_path / "pwned"
    evil = tmp_path / "teacher.pt"
    evil.write_bytes(_pickle_bomb(marker))
    with stack.client() as client:
        from akd_tools.client import AKDClientError

        with pytest.raises(AKDClientError) as refused:
            job = client.submit(spec_with(QUICK_SPEC, evil) | {"teacher": {
                "source": f"file:{evil}", "format": "torchscript"}})  # fmt: skip
            client.wait(job["id"], timeout_s=60)
        assert 400 <= refused.value.status < 500
        big = tmp_path / "big.npz"
        big.write_bytes(b"\0" * 1_000_001)
        with pytest.raises(AKDClientError) as too_big:
            client.upload(big)
        assert too_big.value.status == 413
        # Still serving: a good job runs to the end.
        final = client.wait(
            client.submit(spec_with(QUICK_SPEC, digits_teacher))["id"], timeout_s=180
        )
        assert final["state"] == "succeeded"
    assert not marker.exists()


def _pickle_bomb(marker: Path) -> bytes:
    """A torch.save file whose unpickling would create `marker` (it must never be unpickled)."""
    import io
    import os

    import torch

    class Payload:
        def __reduce__(self):  # noqa: D105 - builds the exploit, never runs it here
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"model": Payload()}, buf)
    return buf.getvalue()


def test_keys_guard_the_api(make_stack, digits_teacher):
    import subprocess
    import sys

    stack: Stack = make_stack(require_keys="true")
    keys = []
    for name in ("alice", "bob"):
        out = subprocess.run([sys.executable, "-m", "akd_tools.cli", "keys", "create", name],
                             env=stack.env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        keys.append(out.stdout.strip())
    stack.start_api()
    from akd_tools.client import AKDClientError

    with stack.client(keys[0]) as alice, stack.client(keys[1]) as bob:
        job_id = alice.submit(spec_with(QUICK_SPEC, digits_teacher))["id"]
        assert alice.status(job_id)["state"] == "queued"
        with pytest.raises(AKDClientError) as other:
            bob.status(job_id)
        assert other.value.status == 404
    for key in ("", "akd_wrong"):
        with stack.client(key) as anon, pytest.raises(AKDClientError) as denied:
            anon.jobs()
        assert denied.value.status == 401
