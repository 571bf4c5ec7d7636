"""Streamed batches read ahead on a thread: same batches, bounded memory, no thread left over."""

from __future__ import annotations

import threading
import time
import weakref

import pytest

from akd_core import prefetch
from akd_core.data.tensors import RowDecoder
from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.pipeline import run_job
from akd_core.prefetch import THREAD_NAME, Prefetcher
from akd_core.spec import parse_spec


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def _gone() -> bool:
    """Whether no reader thread is left: close() joins it, so no waiting is needed."""
    return not _readers()


class Batch:
    """A stand-in decoded batch whose lifetime is watched."""

    def __init__(self, i: int) -> None:
        self.i = i


def test_batches_come_in_order_and_the_thread_ends_with_the_epoch():
    with Prefetcher(lambda i: i * 10, 7) as ahead:
        got = [ahead.next() for _ in range(7)]
        with pytest.raises(IndexError, match="all 7 batches"):
            ahead.next()
    assert got == [0, 10, 20, 30, 40, 50, 60]
    assert _gone()


def test_an_error_in_the_reader_is_raised_in_the_trainer_with_its_message():
    def make(i: int) -> int:
        if i == 2:
            raise DatasetError("data cache file truncated at row 512")
        return i

    with pytest.raises(DatasetError, match="truncated at row 512"), Prefetcher(make, 5) as ahead:
        assert [ahead.next(), ahead.next()] == [0, 1]
        ahead.next()
    assert _gone()


@pytest.mark.timeout(60)  # a close() that cannot wake the reader would hang
def test_leaving_mid_epoch_ends_the_thread_even_while_it_waits_for_a_slot():
    made: list[int] = []
    with Prefetcher(lambda i: made.append(i) or i, 1000) as ahead:
        assert ahead.next() == 0
        deadline = time.monotonic() + 10
        while len(made) < 2 and time.monotonic() < deadline:  # batch 1 made; it waits now
            time.sleep(0.01)
    assert _gone()
    assert made == [0, 1]  # bounded: nothing was read past the one batch ahead


@pytest.mark.parametrize("ahead_n", [1, 2])
def test_decoded_batches_alive_never_exceed_the_one_training_plus_those_ahead(ahead_n):
    alive, peak = [0], [0]
    lock = threading.Lock()

    def gone() -> None:
        with lock:
            alive[0] -= 1

    def make(i: int) -> Batch:
        b = Batch(i)
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        weakref.finalize(b, gone)
        return b

    with Prefetcher(make, 30, ahead=ahead_n) as ahead:
        for i in range(30):
            batch = ahead.next()
            assert batch.i == i
            time.sleep(0.005)  # a slow step: the reader would run ahead if it could
            del batch
    assert peak[0] <= 1 + ahead_n
    assert peak[0] == 1 + ahead_n  # and it does read ahead


def test_ahead_must_be_at_least_one():
    with pytest.raises(ValueError, match="ahead must be at least 1"):
        Prefetcher(lambda i: i, 3, ahead=0)


def _spec(teacher):
    return parse_spec(
        {
            "teacher": {"source": f"file:{teacher}"},
            "student": {"arch": "mlp", "options": {"hidden": [32]}},
            "dataset": {"source": "builtin:digits", "normalize": "train-mean-std"},
            "method": "kd",
            "compare": [],
            "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 0},
            "optimizer": {"batch_size": 128},
            "export": {"int8": False},
        }
    )


def _streamed(teacher, out, cache):
    return run_job(_spec(teacher), out, cache_dir=cache, limits=Limits(resident_data_bytes=0))


@pytest.mark.slow
def test_a_streamed_job_with_prefetch_reports_what_it_reports_without(
    digits_teacher, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setattr(prefetch, "AHEAD", 0)
    plain = _streamed(digits_teacher, tmp_path / "plain", cache)
    on_thread: list[int] = []
    decode = RowDecoder.__call__

    def spy(self, ids):
        if threading.current_thread().name == THREAD_NAME:
            on_thread.append(len(ids))
        return decode(self, ids)

    monkeypatch.setattr(RowDecoder, "__call__", spy)
    monkeypatch.setattr(prefetch, "AHEAD", 1)
    ahead = _streamed(digits_teacher, tmp_path / "ahead", cache)
    assert ahead["dataset"]["placement"] == "streamed"
    assert len(on_thread) >= 2 * 9  # every training batch of both epochs was read ahead
    losses = [(h["train_loss"], h["val_accuracy"]) for h in ahead["history"]]
    assert losses == [(h["train_loss"], h["val_accuracy"]) for h in plain["history"]]
    assert ahead["student"]["accuracy"] == plain["student"]["accuracy"]
    assert _gone()


@pytest.mark.slow
def test_a_reader_error_fails_the_job_with_its_message_and_leaves_no_thread(
    digits_teacher, tmp_path, monkeypatch
):
    decode = RowDecoder.__call__
    reads = [0]

    def failing(self, ids):
        if threading.current_thread().name == THREAD_NAME:
            reads[0] += 1
            if reads[0] == 3:
                raise DatasetError("data cache read failed: short pread at row 384")
        return decode(self, ids)

    monkeypatch.setattr(RowDecoder, "__call__", failing)
    with pytest.raises(Exception, match="short pread at row 384"):
        _streamed(digits_teacher, tmp_path / "out", tmp_path / "cache")
    assert _gone()
