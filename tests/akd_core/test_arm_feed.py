"""A step's rows on streamed data: read a step ahead on a thread, yet exactly the epoch's rows.

Every stored row decodes to [id, id + 0.5] and its cached teacher logits start with its id,
so a batch shows which rows it holds. The oracle is the epoch's order itself: step s of an
epoch holds the training rows at `order[s*bs:(s+1)*bs]` (rank r of `world`: its r-th
contiguous slice, the first `len % world` slices one row longer).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from akd_core import prefetch
from akd_core.arm_feed import ArmFeed
from akd_core.arm_setup import Progress, TrainData
from akd_core.batches import EpochBatches
from akd_core.data.store import DataStore
from akd_core.data.tensors import batch_decoder, split_tensor
from akd_core.data.views import Decoder, SplitView
from akd_core.distributed import Shard
from akd_core.errors import DatasetError, JobCancelled
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.trainer import ArmTrainer
from tests.akd_core import trainer_support as ts

BS = 16
STORED = 70  # rows in the cache entry; a split's row ids are a shuffled subset of them
CPU = torch.device("cpu")
BROKEN = "data cache read failed: short pread at row 384"


class Reads:
    """The real cache decoder, logging each read's thread and ids; can fail or stall one read."""

    def __init__(self, real: Any, fail_at: int | None = None, stall_at: int | None = None):
        self.real, self.fail_at, self.stall_at = real, fail_at, stall_at
        self.log: list[tuple[str, list[int]]] = []  # (thread name, stored row ids)
        self.stalling = threading.Event()  # set while read `stall_at` is under way

    def ahead(self) -> list[list[int]]:
        """The ids of every read made on the read-ahead thread, in order."""
        return [ids for name, ids in self.log if name == prefetch.THREAD_NAME]

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.log.append((threading.current_thread().name, ids.tolist()))
        on_thread = threading.current_thread().name == prefetch.THREAD_NAME
        if on_thread and len(self.ahead()) == self.fail_at:
            raise DatasetError(BROKEN)
        if on_thread and len(self.ahead()) == self.stall_at:
            self.stalling.set()
            time.sleep(0.5)  # still reading when the trainer leaves: close() must wait for it
        return self.real(ids)


def _streamed(cache, n: int, reads: dict[str, Any] | None = None) -> tuple[TrainData, Reads]:
    """n training rows (and 8 validation rows) read from a real data cache entry."""
    ids = np.arange(STORED, dtype=np.float64)
    # Stored times 10 with scale 10: the decoder really casts and divides.
    x = np.stack([ids * 10, ids * 10 + 5], axis=1)
    stored = DataStore(cache).put("k", {"main": (x, ids.astype(np.int64) % 3)}, {}).x
    decode = Decoder(stored, 10.0)
    rows = np.random.default_rng(7).permutation(STORED)[: n + 8]  # row ids != positions
    # numpy-like views: what the pipeline passes as a split
    train: Any = SplitView(stored, rows[:n], decode)
    val: Any = SplitView(stored, rows[n:], decode)
    real = batch_decoder(train)
    assert real is not None
    spy = Reads(real, **(reads or {}))
    train_ids = torch.from_numpy(rows[:n])
    logits = torch.zeros((n, 3))
    logits[:, 0] = train_ids.float()  # (N, K) cached teacher logits: the first one is the id
    data = TrainData(
        x_train=split_tensor(train, CPU),  # the row ids, as the pipeline streams a split
        y_train=train_ids % 3,
        x_val=split_tensor(val, CPU),
        y_val=torch.from_numpy(rows[n:]) % 3,
        teacher_train=logits,
        decode=spy,
    )
    return data, spy


def _expected(data: TrainData, order: torch.Tensor, step: int, shard: Shard) -> dict[str, Any]:
    """What step `step` must hold: its rows of the epoch's order, decoded, with their labels."""
    global_ids = data.x_train[order[step * BS : (step + 1) * BS]].tolist()
    mine = np.array_split(np.array(global_ids, dtype=np.int64), shard.world)[shard.rank].tolist()
    return {
        "x": [[float(i), i + 0.5] for i in mine],
        "y": [i % 3 for i in mine],
        "teacher": [float(i) for i in mine],
    }


def _got(xb: torch.Tensor, yb: torch.Tensor, tb: torch.Tensor | None) -> dict[str, Any]:
    assert tb is not None
    return {"x": xb.tolist(), "y": yb.tolist(), "teacher": tb[:, 0].tolist()}


def _epoch(
    feed: ArmFeed, order: torch.Tensor, steps: int, step_s: float = 0.0
) -> list[dict[str, Any]]:
    """What each step of one epoch receives, driven as the trainer drives the feed; each step
    lasts `step_s` (time for the thread to read ahead as far as it may)."""
    seen = []
    with feed.read_ahead(order, steps):
        for step in range(steps):
            idx = feed.shard.rows(order[step * BS : (step + 1) * BS])
            xb, yb = feed.fetch(idx, None)
            seen.append(_got(xb, yb, feed.teacher("kd", xb, idx, None)))
            time.sleep(step_s)
    return seen


def _feed(data: TrainData, shard: Shard | None = None) -> ArmFeed:
    return ArmFeed(data, EpochBatches(CPU, BS), shard or Shard(), BS)


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == prefetch.THREAD_NAME]


@pytest.mark.parametrize("ahead", [0, 1, 2])
def test_every_step_gets_its_rows_of_the_order_with_or_without_read_ahead(
    tmp_path, monkeypatch, ahead
):
    """53 rows in batches of 16: three full steps and a last one of 5 rows."""
    monkeypatch.setattr(prefetch, "AHEAD", ahead)
    data, reads = _streamed(tmp_path, 53)
    order = torch.randperm(53, generator=torch.Generator().manual_seed(3))
    seen = _epoch(_feed(data), order, 4)
    assert seen == [_expected(data, order, s, Shard()) for s in range(4)]
    assert [len(s["x"]) for s in seen] == [16, 16, 16, 5]
    # With read-ahead every batch was read on the thread (else the equality proves nothing).
    assert len(reads.ahead()) == (4 if ahead else 0)
    assert len(reads.log) == 4  # and none was read twice
    assert not _readers()


def test_the_read_ahead_stops_at_the_epochs_end_and_the_next_epoch_reads_its_own_order(tmp_path):
    """49 rows: the trainer drops the 1-row tail (3 steps); no read touches it or epoch 2 early."""
    data, reads = _streamed(tmp_path, 49)
    g = torch.Generator().manual_seed(5)
    orders = [torch.randperm(49, generator=g) for _ in range(2)]
    feed = _feed(data)
    for e, order in enumerate(orders):
        seen = _epoch(feed, order, 3, step_s=0.05)
        assert seen == [_expected(data, order, s, Shard()) for s in range(3)], f"epoch {e + 1}"
        # Read exactly this epoch's three batches: not the dropped row, not the next order.
        assert reads.ahead()[3 * e :] == [
            data.x_train[order[s * BS : (s + 1) * BS]].tolist() for s in range(3)
        ]
        assert not _readers()  # the thread ended with the epoch
    assert len(reads.log) == 6
    # Between epochs the feed reads in the step again (no stale read-ahead is consulted).
    idx = torch.tensor([4, 0])
    assert feed.fetch(idx, None)[0].tolist() == [
        [float(i), i + 0.5] for i in data.x_train[idx].tolist()
    ]
    assert reads.log[-1][0] == threading.current_thread().name


@pytest.mark.parametrize("world", [2, 3])
def test_a_data_parallel_rank_gets_its_slice_of_each_global_batch(tmp_path, world):
    """53 rows: each rank's rows of every batch, the partial last batch of 5 rows included."""
    data, reads = _streamed(tmp_path, 53)
    order = torch.randperm(53, generator=torch.Generator().manual_seed(11))
    per_rank = []
    for rank in range(world):
        shard = Shard(rank, world)
        seen = _epoch(_feed(data, shard), order, 4)
        assert seen == [_expected(data, order, s, shard) for s in range(4)], f"rank {rank}"
        per_rank.append(seen)
    # Together the ranks hold each global batch once, in order, and each read only its rows.
    for s in range(4):
        joined = [row for seen in per_rank for row in seen[s]["x"]]
        assert [int(r[0]) for r in joined] == data.x_train[order[s * BS : (s + 1) * BS]].tolist()
    assert sum(len(ids) for ids in reads.ahead()) == 53
    assert max(len(ids) for ids in reads.ahead()) == -(-BS // world)


@pytest.mark.timeout(60)  # a swallowed error would leave the step waiting for ever
def test_a_read_error_on_the_thread_is_raised_in_its_step_and_the_thread_ends(tmp_path):
    data, reads = _streamed(tmp_path, 53, {"fail_at": 3})
    order = torch.randperm(53, generator=torch.Generator().manual_seed(3))
    feed, threads = _feed(data), threading.active_count()
    seen = []

    def run() -> None:
        with feed.read_ahead(order, 4):
            for step in range(4):
                idx = order[step * BS : (step + 1) * BS]
                seen.append(feed.fetch(idx, None)[0][:, 0].tolist())

    with pytest.raises(DatasetError) as caught:
        run()
    assert str(caught.value) == BROKEN
    # The two steps before it trained on their rows; the third got the error, not a batch.
    assert seen == [data.x_train[order[s * BS : (s + 1) * BS]].float().tolist() for s in range(2)]
    assert reads.ahead()[-1] == data.x_train[order[2 * BS : 3 * BS]].tolist()
    assert not _readers()
    assert threading.active_count() == threads


# -- through the trainer: the rows the steps really train on ------------------------------


def _trainer(data: TrainData, out, hooks: Hooks | None = None) -> ArmTrainer:
    spec = ts.arm_spec(
        annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 0},
        optimizer={"batch_size": BS, "name": "sgd", "compile": "off"},
    )
    torch.manual_seed(0)
    model = build_model("mlp", (2,), 3, {"hidden": [4]})
    return ArmTrainer("kd", spec, model, data, CPU, out, hooks or Hooks(), Progress(2))


def _watch(tr: ArmTrainer) -> tuple[list[torch.Tensor], list[list[dict[str, Any]]]]:
    """Record each epoch's order and what each step's fetch returned."""
    orders: list[torch.Tensor] = []
    epochs: list[list[dict[str, Any]]] = []
    feed, draw, read_ahead, fetch = tr.feed, tr.batches.order, tr.feed.read_ahead, tr.feed.fetch

    def order(n: int, generator: torch.Generator) -> torch.Tensor:
        orders.append(draw(n, generator))
        return orders[-1]

    @contextlib.contextmanager
    def epoch(order: torch.Tensor, steps: int) -> Iterator[None]:
        epochs.append([])
        with read_ahead(order, steps):
            yield

    def watched_fetch(idx: torch.Tensor, idx_host: Any) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = fetch(idx, idx_host)
        if epochs:  # the steps' fetches (not the forward choice's, made before the first epoch)
            epochs[-1].append({"x": xb.tolist(), "y": yb.tolist()})
        return xb, yb

    tr.batches.order = order  # type: ignore[method-assign]
    feed.read_ahead, feed.fetch = epoch, watched_fetch  # type: ignore[method-assign]
    return orders, epochs


@pytest.mark.parametrize("n", [49, 53])
def test_the_trainers_steps_train_on_the_rows_of_each_epochs_order(tmp_path, monkeypatch, n):
    """Two epochs through ArmTrainer: 49 rows drop a 1-row tail, 53 keep a 5-row last batch."""
    runs = {}
    for ahead in (0, 1):
        monkeypatch.setattr(prefetch, "AHEAD", ahead)
        data, reads = _streamed(tmp_path / f"cache{ahead}", n)
        tr = _trainer(data, tmp_path / f"out{ahead}")
        orders, epochs = _watch(tr)
        result = tr.run(resume=False)
        steps = n // BS + (n % BS >= 2)
        assert len(orders) == len(epochs) == 2
        for e, (order, seen) in enumerate(zip(orders, epochs, strict=True)):
            want = [_expected(data, order, s, Shard()) for s in range(steps)]
            assert seen == [{"x": w["x"], "y": w["y"]} for w in want], f"epoch {e + 1}"
        assert len(reads.ahead()) == (2 * steps if ahead else 0)
        runs[ahead] = result
        assert not _readers()
    assert [h.train_loss for h in runs[1].history] == [h.train_loss for h in runs[0].history]
    for k, v in runs[0].best_state.items():
        assert torch.equal(runs[1].best_state[k], v), k


@pytest.mark.timeout(60)  # a close() that cannot stop the thread would wait for ever
def test_a_cancel_mid_epoch_joins_the_read_ahead_thread(tmp_path):
    """Cancelled at step 3 of epoch 1 while the thread still reads batch 3: it is waited for."""
    data, reads = _streamed(tmp_path, 53, {"stall_at": 3})
    checks = [0]

    def should_cancel() -> bool:
        checks[0] += 1
        if checks[0] < 3:
            return False
        assert reads.stalling.wait(timeout=60)  # the thread is inside the read of batch 3
        return True

    threads = threading.active_count()
    tr = _trainer(data, tmp_path / "out", Hooks(should_cancel=should_cancel))
    with pytest.raises(JobCancelled):
        tr.run(resume=False)
    assert not _readers()  # no sleep, no poll: the exit joined the thread
    assert threading.active_count() == threads
    assert len(reads.ahead()) == 3  # and it read nothing past the batch in hand


@pytest.mark.timeout(60)
def test_a_read_error_fails_the_arm_with_its_message_and_leaves_no_thread(tmp_path):
    """The third batch read ahead cannot be read: the arm stops with the reader's error."""
    data, reads = _streamed(tmp_path, 53, {"fail_at": 3})
    threads = threading.active_count()
    with pytest.raises(DatasetError) as caught:
        _trainer(data, tmp_path / "out").run(resume=False)
    assert str(caught.value) == BROKEN
    assert len(reads.ahead()) == 3
    assert not _readers()
    assert threading.active_count() == threads


@pytest.mark.parametrize("ahead, resident", [(0, False), (1, False), (1, True)])
def test_splits_kept_on_the_host_are_gathered_with_the_host_copy_of_the_order(
    tmp_path, monkeypatch, ahead, resident
):
    """A training device other than the host (here 'meta', which holds no values): labels,
    cached logits and row ids stay in host memory and are gathered with the order's host copy,
    as on a GPU; the device copy of the order is never read on the host."""
    monkeypatch.setattr(prefetch, "AHEAD", ahead)
    streamed, _ = _streamed(tmp_path, 53)
    data = streamed
    if resident:  # the decoded inputs themselves in host memory, no decoder
        assert streamed.decode is not None
        data = replace(streamed, x_train=streamed.decode(streamed.x_train), decode=None)
    order = torch.randperm(53, generator=torch.Generator().manual_seed(3))
    feed = ArmFeed(data, EpochBatches(torch.device("meta"), BS), Shard(), BS)
    seen = []
    with feed.read_ahead(order, 4):
        for s in range(4):
            idx_host = order[s * BS : (s + 1) * BS]
            idx = idx_host.to("meta")  # (B,) the order on the training device
            xb, yb = feed.fetch(idx, idx_host)
            seen.append(_got(xb, yb, feed.teacher("kd", xb, idx, idx_host)))
    assert seen == [_expected(streamed, order, s, Shard()) for s in range(4)]
