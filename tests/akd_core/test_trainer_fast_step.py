"""The training step without host round-trips: same results as the old loop, no syncs inside."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from akd_core.arm_setup import TrainData
from akd_core.batches import EpochBatches, Staging
from akd_core.checkpoint import restore_rng
from akd_core.data.augment import crop_flip
from akd_core.device import channels_last_for
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.optim import build_optimizer
from akd_core.trainer import ArmTrainer, Progress, accuracy
from tests.akd_core import trainer_support as ts

# Figures of the loop before this change (host-side shuffle, crop-flip on the CPU), same seeds.
OLD_AUGMENTED_LOSSES = [4.469153213500976, 11.723409271240234, 0.9377948760986328]
OLD_AUGMENTED_WEIGHT_SUM = 5.913403528160416
OLD_CACHED_LOSSES = [1.1268596649169922, 3.454576015472412, 1.0660068988800049, 1.017209529876709]
OLD_CACHED_WEIGHT_SUM = -0.3667093934491277


def image_data() -> TrainData:
    """40 one-channel 8x8 images, a linear teacher run per (crop-flipped) batch."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand((40, 1, 8, 8), generator=g)
    w = torch.randn((64, 3), generator=g)
    y = (x.flatten(1) @ w).argmax(1)
    return TrainData(x_train=x, y_train=y, x_val=x[:10].clone(), y_val=y[:10].clone(),
                     teacher_fn=lambda xb: xb.flatten(1) @ w, augment=crop_flip)  # fmt: skip


def augmented_trainer(out: Path) -> ArmTrainer:
    """Annealing 2 + 1 epochs of an mlp on crop-flipped images, batch 16 (3 steps an epoch)."""
    spec = ts.arm_spec(annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
                       optimizer={"batch_size": 16})  # fmt: skip
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 3, {"hidden": [8]})
    return ArmTrainer("annealing", spec, model, image_data(), torch.device("cpu"), out, Hooks(),
                      Progress(3))  # fmt: skip


def _weight_sum(state: dict[str, torch.Tensor]) -> float:
    return sum(float(v.double().sum()) for v in state.values())


def test_the_device_side_loop_trains_exactly_as_the_old_one(tmp_path):
    """On CPU the shuffle and augmentation draw the same numbers as before: same figures."""
    aug = augmented_trainer(tmp_path / "aug").run(resume=False)
    assert [h.train_loss for h in aug.history] == pytest.approx(OLD_AUGMENTED_LOSSES, rel=1e-6)
    assert _weight_sum(aug.best_state) == pytest.approx(OLD_AUGMENTED_WEIGHT_SUM, rel=1e-6)
    cached = ts.annealing_trainer(tmp_path / "cached", Hooks()).run(resume=False)
    assert [h.train_loss for h in cached.history] == pytest.approx(OLD_CACHED_LOSSES, rel=1e-6)
    assert _weight_sum(cached.best_state) == pytest.approx(OLD_CACHED_WEIGHT_SUM, rel=1e-6)


HOST_SYNCS = ("item", "tolist", "numpy", "cpu", "__int__", "__float__", "__bool__")


def test_the_step_never_waits_for_the_device(monkeypatch, tmp_path):
    """Inside a step (batch gather, augmentation, teacher, forward, loss, backward) no tensor
    is read back to the host: each would be a device sync on CUDA."""
    t = augmented_trainer(tmp_path)
    real_step, steps = ArmTrainer._step, []

    def guarded(self, *args, **kwargs):
        with monkeypatch.context() as m:
            for name in HOST_SYNCS:
                m.setattr(torch.Tensor, name, _refuse(name))
            steps.append(1)
            return real_step(self, *args, **kwargs)

    monkeypatch.setattr(ArmTrainer, "_step", guarded)
    t.run(resume=False)
    assert len(steps) == 3 * 3


def _refuse(name: str):
    def call(*_args, **_kwargs):
        raise AssertionError(f"Tensor.{name} was called inside the training step")

    return call


def test_accuracy_reads_the_device_once_not_per_batch(monkeypatch):
    """Correct predictions are summed on the device: one host read for the whole split."""
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    data = ts.synthetic_train_data(n=32)
    expected = float((model(data.x_train).argmax(1) == data.y_train).float().mean())
    reads, real_int = [], torch.Tensor.__int__

    def counting(self):
        reads.append(1)
        return real_int(self)

    monkeypatch.setattr(torch.Tensor, "__int__", counting)
    assert accuracy(model, data.x_train, data.y_train, batch_size=4) == pytest.approx(expected)
    assert len(reads) == 1  # 8 batches, one read


def test_staging_returns_the_rows_and_never_an_alias_of_its_buffers():
    """Two staging buffers alternate; a batch handed out stays intact while later ones load."""
    src = torch.arange(40.0).reshape(20, 2)
    stage = Staging((2,), src.dtype, torch.device("cpu"), rows=4)
    orders = [torch.tensor([3, 1, 4, 0]), torch.tensor([9, 2, 6, 5]), torch.tensor([7, 8])]
    got = [
        stage.send(len(i), lambda buf, i=i: torch.index_select(src, 0, i, out=buf)) for i in orders
    ]
    for idx, batch in zip(orders, got, strict=True):
        assert torch.equal(batch, src[idx])  # the first batch survived two later gathers


def test_streamed_rows_are_decoded_per_batch_and_train_as_resident_data(tmp_path):
    """x holding row ids plus a decode hook trains exactly as the decoded rows held whole."""
    resident = ts.synthetic_train_data(n=32)
    table = torch.cat([resident.x_train, resident.x_val])  # one store: train rows, then val
    decoded: list[int] = []

    def decode(ids: torch.Tensor) -> torch.Tensor:
        decoded.append(len(ids))
        return table[ids]

    streamed = TrainData(x_train=torch.arange(32), y_train=resident.y_train, x_val=torch.arange(32, 40),
                         y_val=resident.y_val, teacher_train=resident.teacher_train,
                         decode=decode)  # fmt: skip
    runs = []
    for data in (resident, streamed):
        torch.manual_seed(0)
        model = build_model("mlp", (6,), 3, {"hidden": [8]})
        t = ArmTrainer("annealing", ts.arm_spec(), model, data, torch.device("cpu"),
                       tmp_path / str(len(runs)), Hooks(), Progress(6))  # fmt: skip
        runs.append(t.run(resume=False))
    assert [h.train_loss for h in runs[1].history] == [h.train_loss for h in runs[0].history]
    assert decoded.count(16) == 2 * 6  # one decode per training batch of 16 rows (+ validation)


def test_epoch_order_is_drawn_by_the_generator_and_indexes_resident_splits():
    batches = EpochBatches(torch.device("cpu"), rows=4)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(batches.order(10, g1), torch.randperm(10, generator=g2))
    x = torch.arange(10.0)
    idx = torch.tensor([4, 2])
    assert torch.equal(batches.take(x, idx, None), torch.tensor([4.0, 2.0]))
    assert not batches.on_host(x, None)


def test_channels_last_only_for_conv_students_under_cuda_autocast():
    conv = build_model("cnn-small", (3, 16, 16), 10, {})
    mlp = build_model("mlp", (6,), 3, {"hidden": [8]})
    cuda = torch.device("cuda")
    assert channels_last_for(conv, cuda, torch.bfloat16)
    assert channels_last_for(conv, cuda, torch.float16)
    assert not channels_last_for(conv, cuda, None)  # fp32: NCHW kernels are as fast
    assert not channels_last_for(conv, torch.device("cpu"), torch.bfloat16)
    assert not channels_last_for(mlp, cuda, torch.bfloat16)


def test_optimizers_are_fused_when_asked():
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    for name in ("adamw", "sgd"):
        spec = ts.arm_spec(optimizer={"name": name}).optimizer
        assert build_optimizer(model, spec, fused=True).defaults["fused"] is True
        assert not build_optimizer(model, spec).defaults["fused"]


def test_a_generator_state_from_another_device_kind_reseeds_instead_of_failing():
    """A CUDA checkpoint (16-byte Philox state) resumed on CPU: a fixed reseed, no crash."""
    g = torch.Generator().manual_seed(0)
    cuda_like = torch.arange(16, dtype=torch.uint8)
    state = {"torch": torch.get_rng_state(), "generator": cuda_like}
    restore_rng(state, g)
    first = torch.rand(3, generator=g)
    restore_rng(state, g)
    assert torch.equal(torch.rand(3, generator=g), first)
