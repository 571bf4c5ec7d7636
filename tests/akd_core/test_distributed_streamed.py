"""Data-parallel training on streamed data: each rank reopens the data cache and reads its rows."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from akd_core.arm_setup import TrainData
from akd_core.data.store import DataStore
from akd_core.data.tensors import batch_decoder, split_tensor
from akd_core.data.views import Decoder, SplitView
from akd_core.distributed import ParallelArm, train_arm_parallel
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.trainer import ArmTrainer, Progress
from tests.akd_core import trainer_support as ts

EPOCHS = {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1}


def _spec():
    return ts.arm_spec(annealing=EPOCHS, optimizer={"batch_size": 16, "name": "sgd"})


def _student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", (6,), 3, {"hidden": [8]})  # no BatchNorm: exact equivalence


def _streamed(cache) -> TrainData:
    """The synthetic data written to a data cache entry and read back as row ids + decoder."""
    d = ts.synthetic_train_data(n=48)  # 3 global batches of 16 per epoch
    x = d.x_train.numpy()
    # Stored as float64 times 10: decoding (cast to float32, divide by the scale) must run.
    stored = DataStore(cache).put("k", {"main": (x.astype(np.float64) * 10, d.y_train.numpy())},
                                  {})  # fmt: skip
    decode = Decoder(stored.x, 10.0)
    train: Any = SplitView(  # numpy-like: what the pipeline passes as a split
        stored.x, np.arange(48), decode
    )
    val: Any = SplitView(stored.x, np.arange(8), decode)
    return replace(d, x_train=split_tensor(train, torch.device("cpu")),
                   x_val=split_tensor(val, torch.device("cpu")), decode=batch_decoder(train))  # fmt: skip


def test_a_streamed_decoder_pickles_by_path_and_reads_the_same_rows(tmp_path):
    data = _streamed(tmp_path)
    assert data.decode is not None
    ids = torch.tensor([5, 0, 47])
    copy = pickle.loads(pickle.dumps(data.decode))
    assert torch.equal(copy(ids), data.decode(ids))
    assert torch.allclose(copy(ids), ts.synthetic_train_data(n=48).x_train[ids])
    assert "_file" not in copy.read.stored.__getstate__()  # travels as a path, not a descriptor


@pytest.mark.slow
def test_two_gloo_processes_on_streamed_data_follow_the_single_process_run(tmp_path):
    """Each rank reads its half of every global batch from the cache; same losses and weights."""
    data = _streamed(tmp_path / "cache")
    one = ArmTrainer("annealing", _spec(), _student(), data, torch.device("cpu"), tmp_path / "one",
                     Hooks(), Progress(3), run_key="job").run(resume=False)  # fmt: skip
    resident = ArmTrainer("annealing", _spec(), _student(), ts.synthetic_train_data(n=48),
                          torch.device("cpu"), tmp_path / "res", Hooks(), Progress(3),
                          run_key="job").run(resume=False)  # fmt: skip
    job = ParallelArm("annealing", _spec(), _student(), data, "cpu", tmp_path / "two", Progress(3),
                      None, "job", False)  # fmt: skip
    two = train_arm_parallel(job, 2, Hooks())
    losses = [h.train_loss for h in one.history]
    assert losses == pytest.approx([h.train_loss for h in resident.history], rel=1e-5)
    assert [h.train_loss for h in two.history] == pytest.approx(losses, rel=1e-5)
    assert [h.val_accuracy for h in two.history] == [h.val_accuracy for h in one.history]
    for k, v in one.best_state.items():
        assert torch.allclose(two.best_state[k], v, atol=1e-5), k
