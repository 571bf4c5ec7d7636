"""Data-parallel training with crop-flip: every rank runs its own sandboxed teacher on its
augmented rows, and 2 gloo ranks follow one process's loss curve on the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from akd_core.data.augment import crop_flip
from akd_core.distributed import ParallelArm, Shard, check_devices, train_arm_parallel
from akd_core.errors import JobCancelled, TeacherLoadError
from akd_core.events import Hooks
from akd_core.export import export_onnx
from akd_core.fileio import sha256_of
from akd_core.pipeline import run_job
from akd_core.records import ArmResult
from akd_core.spec import TeacherSpec
from akd_core.teacher_source import TeacherSource, loaded_teacher
from akd_core.trainer import ArmTrainer, Progress, TrainData
from tests.akd_core import trainer_support as ts

SHAPE, CLASSES, ROWS = (1, 8, 8), 3, 192
CPU = torch.device("cpu")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def conv_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ONNX conv teacher (no BatchNorm) whose logits change with where a crop falls."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 64, CLASSES))  # fmt: skip
    return export_onnx(net.eval(), SHAPE, tmp_path_factory.mktemp("t") / "teacher.onnx", {})


def _source(path: Path) -> TeacherSource:
    return TeacherSource(TeacherSpec(source=f"file:{path}"), path, SHAPE, CLASSES, sha256_of(path))


def _student() -> nn.Module:
    """A tiny CNN without BatchNorm: DDP then equals one process exactly (up to float order)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 16, CLASSES))  # fmt: skip


def _data() -> TrainData:
    g = _gen(0)
    x, y = torch.rand((ROWS, *SHAPE), generator=g), torch.randint(0, CLASSES, (ROWS,), generator=g)
    return TrainData(x_train=x, y_train=y, x_val=x[:32].clone(), y_val=y[:32].clone(),
                     augment=crop_flip)  # fmt: skip


def _spec(**optimizer: object):
    return ts.arm_spec(
        dataset={"source": "file:unused.npz", "augment": "crop-flip"},
        annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
        optimizer={"batch_size": 32, "name": "sgd", "lr": 0.1, **optimizer},
    )


def test_ranks_augment_their_slices_of_a_batch_as_one_process_augments_it() -> None:
    """Each of 3 ranks draws for the whole batch of 10 and keeps its rows' draws."""
    x = torch.rand(10, 2, 6, 6, generator=_gen(0))
    whole = crop_flip(x, _gen(5), pad=2)
    parts = []
    for rank in range(3):
        rows = Shard(rank, 3).span(len(x))
        parts.append(crop_flip(x[rows], _gen(5), pad=2, start=rows.start, batch_rows=len(x)))
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)
    # Rank 1 of 3 holds rows 4..7, and its crops are not rank 0's (its own draws, not the first).
    assert Shard(1, 3).span(10) == slice(4, 7)
    assert not torch.equal(parts[1], crop_flip(x[4:7], _gen(5), pad=2))


@pytest.mark.parametrize("n", [2, 7, 32, 33])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_a_rank_span_is_its_tensor_split_slice(n: int, world: int) -> None:
    idx = torch.arange(n)
    for rank in range(world):
        assert torch.equal(idx[Shard(rank, world).span(n)], idx.tensor_split(world)[rank])


def test_crop_flip_jobs_may_train_on_several_devices() -> None:
    spec = ts.arm_spec(dataset={"source": "file:x.npz", "augment": "crop-flip"})
    check_devices(2, CPU, spec)  # no refusal: the ranks run their own teachers


@pytest.mark.slow
def test_a_rank_teacher_is_sandboxed_and_refused_when_its_file_changed(
    conv_teacher: Path, tmp_path: Path
) -> None:
    x = torch.rand(5, *SHAPE, generator=_gen(1))
    with loaded_teacher(_source(conv_teacher), CPU) as teacher:
        assert teacher is not None and type(teacher).__name__ == "SandboxedTeacher"
        assert teacher.predict(x).shape == (5, CLASSES)
    with pytest.raises(RuntimeError, match="released"):  # the block's end stopped its process
        teacher.predict(x)
    other = _linear_onnx_teacher(tmp_path / "teacher.onnx")  # the same name, another model
    stale = TeacherSource(TeacherSpec(source=f"file:{other}"), other, SHAPE, CLASSES,
                          sha256_of(conv_teacher))  # fmt: skip
    with pytest.raises(TeacherLoadError, match="changed while the job ran") as err:
        stale.load(CPU)
    assert err.value.field == "teacher.source"


@pytest.mark.slow
def test_two_gloo_ranks_with_crop_flip_follow_the_single_process_loss_curve(
    conv_teacher: Path, tmp_path: Path
) -> None:
    """Global batch 32 = 2 x 16 rows, each rank running its own sandboxed teacher."""
    with loaded_teacher(_source(conv_teacher), CPU) as teacher:
        assert teacher is not None
        data = _data()
        data.teacher_fn = teacher.predict
        one = ArmTrainer("annealing", _spec(), _student(), data, CPU, tmp_path / "one", Hooks(),
                         Progress(3), run_key="job").run(resume=False)  # fmt: skip
    job = ParallelArm("annealing", _spec(micro_batch_size=8), _student(), _data(), "cpu",
                      tmp_path / "two", Progress(3), None, "job", False,
                      teacher=_source(conv_teacher))  # fmt: skip
    two = train_arm_parallel(job, 2, Hooks())
    losses = [h.train_loss for h in one.history]
    assert len(losses) == 3 and len(set(losses)) == 3
    assert [h.train_loss for h in two.history] == pytest.approx(losses, rel=1e-5)
    assert [h.val_accuracy for h in two.history] == [h.val_accuracy for h in one.history]
    for k, v in one.best_state.items():
        assert torch.allclose(two.best_state[k], v, atol=1e-5), k


@pytest.mark.slow
def test_a_crop_flip_checkpoint_of_one_process_resumes_exactly_on_two(
    conv_teacher: Path, tmp_path: Path
) -> None:
    """Stopped after epoch 1 of 2, the arm finishes on 2 ranks as if never interrupted: the
    ranks restore the generator and draw the rest of the crops as one process would."""
    spec = _spec()
    with loaded_teacher(_source(conv_teacher), CPU) as teacher:
        assert teacher is not None
        data = _data()
        data.teacher_fn = teacher.predict

        def single(out: Path, hooks: Hooks) -> ArmResult:
            return ArmTrainer("kd", spec, _student(), data, CPU, out, hooks, Progress(3),
                              run_key="job").run(resume=False)  # fmt: skip

        whole = single(tmp_path / "whole", Hooks())
        with pytest.raises(JobCancelled):  # the first step of epoch 2 (6 steps an epoch)
            single(tmp_path / "split", Hooks(should_cancel=ts.StopAfter(ROWS // 32 + 1)))
    job = ParallelArm("kd", spec, _student(), _data(), "cpu", tmp_path / "split", Progress(3),
                      None, "job", True, teacher=_source(conv_teacher))  # fmt: skip
    resumed = train_arm_parallel(job, 2, Hooks())
    assert len(whole.history) == 3
    assert [h.train_loss for h in resumed.history] == pytest.approx(
        [h.train_loss for h in whole.history], rel=1e-5
    )
    for k, v in whole.best_state.items():
        assert torch.allclose(resumed.best_state[k], v, atol=1e-5), k


def _linear_onnx_teacher(path: Path) -> Path:
    """trainer_support's seed-0 linear teacher as a real ONNX file (it labelled the dataset)."""
    linear = nn.Linear(64, CLASSES, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(ts.teacher_weight(0).T))
    return export_onnx(nn.Sequential(nn.Flatten(), linear).eval(), SHAPE, path, {})


@pytest.mark.slow
def test_a_crop_flip_job_on_two_devices_writes_the_outputs_of_one(tmp_path: Path) -> None:
    """run_job(devices=2) with crop-flip: student.onnx and a report whose history is devices=1's."""
    teacher = _linear_onnx_teacher(tmp_path / "teacher.onnx")
    data = ts.write_dataset(tmp_path / "data.npz")
    spec = ts.job_spec(teacher, data, augment="crop-flip", compare=["student"],
                       annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1})  # fmt: skip
    reports = {}
    for devices in (1, 2):
        out = tmp_path / f"out{devices}"
        run_job(spec, out, devices=devices, cache_dir=tmp_path / "cache")
        assert (out / "student.onnx").stat().st_size > 0 and (out / "report.md").exists()
        reports[devices] = json.loads((out / "report.json").read_text())
    one, two = reports[1], reports[2]
    assert two["teacher"]["accuracy"] == one["teacher"]["accuracy"] == 1.0
    assert [h["train_loss"] for h in two["history"]] == pytest.approx(
        [h["train_loss"] for h in one["history"]], rel=1e-5
    )
    assert [h["val_accuracy"] for h in two["history"]] == [
        h["val_accuracy"] for h in one["history"]
    ]
    assert two["student"]["accuracy"] == one["student"]["accuracy"]
    assert two["baselines"]["student"]["accuracy"] == one["baselines"]["student"]["accuracy"]
    assert np.isclose(two["onnx"]["argmax_agreement"], 1.0)
