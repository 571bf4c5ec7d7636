"""Data-parallel training (DDP, 2 gloo processes on CPU) equals one process on the same batch."""

from __future__ import annotations

import pytest
import torch

from akd_core.distributed import ParallelArm, Shard, check_devices, train_arm_parallel
from akd_core.errors import SpecError
from akd_core.events import Hooks
from akd_core.limits import Limits
from akd_core.models import build_model
from akd_core.pipeline import run_job
from akd_core.trainer import ArmTrainer, Progress
from tests.akd_core import trainer_support as ts

EPOCHS = {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1}


def _spec(**optimizer):
    return ts.arm_spec(annealing=EPOCHS, optimizer={"batch_size": 16, "name": "sgd", **optimizer})


def _student() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", (6,), 3, {"hidden": [8]})  # no BatchNorm: exact equivalence


def _single(tmp_path, hooks: Hooks | None = None, resume: bool = False, spec=None):
    data = ts.synthetic_train_data(n=48)  # 3 global batches of 16 per epoch
    t = ArmTrainer("annealing", spec or _spec(), _student(), data, torch.device("cpu"), tmp_path,
                   hooks or Hooks(), Progress(3), run_key="job")  # fmt: skip
    return t.run(resume=resume)


def _parallel(tmp_path, hooks: Hooks, resume: bool = False, **optimizer):
    job = ParallelArm("annealing", _spec(**optimizer), _student(), ts.synthetic_train_data(n=48),
                      "cpu", tmp_path, Progress(3), None, "job", resume)  # fmt: skip
    return train_arm_parallel(job, 2, hooks)


@pytest.mark.slow
def test_two_gloo_processes_follow_the_single_process_loss_curve(tmp_path):
    """Each rank takes half of every global batch of 16; same losses, same weights."""
    one = _single(tmp_path / "one")
    events: list = []
    two = _parallel(tmp_path / "two", Hooks(events.append), micro_batch_size=4)
    assert [h.train_loss for h in two.history] == pytest.approx(
        [h.train_loss for h in one.history], rel=1e-5
    )
    assert [h.val_accuracy for h in two.history] == [h.val_accuracy for h in one.history]
    for k, v in one.best_state.items():
        assert torch.allclose(two.best_state[k], v, atol=1e-5), k
    assert two.forward is not None and "data-parallel on 2 processes" in two.forward.reason
    # Rank 0's progress reached the caller: one event per epoch, with the global loss.
    epochs = [e for e in events if e.kind == "epoch"]
    assert [e.train_loss for e in epochs] == pytest.approx([h.train_loss for h in one.history])


@pytest.mark.slow
def test_a_single_process_checkpoint_resumes_exactly_on_two_processes(tmp_path):
    """Stopped after its first epoch, the arm finishes on 2 ranks as if never interrupted."""
    whole = _single(tmp_path / "whole")
    with pytest.raises(Exception, match="cancelled"):
        _single(tmp_path / "split", Hooks(should_cancel=ts.StopAfter(4)))  # epoch 2's first step
    resumed = _parallel(tmp_path / "split", Hooks(), resume=True)
    assert [h.train_loss for h in resumed.history] == pytest.approx(
        [h.train_loss for h in whole.history], rel=1e-5
    )
    for k, v in whole.best_state.items():
        assert torch.allclose(resumed.best_state[k], v, atol=1e-5), k


def test_each_rank_takes_its_contiguous_slice_of_the_batch():
    idx = torch.arange(10, 20)
    assert torch.equal(Shard(0, 2).rows(idx), torch.arange(10, 15))
    assert torch.equal(Shard(1, 2).rows(idx), torch.arange(15, 20))
    assert torch.equal(Shard().rows(idx), idx)
    assert torch.equal(torch.cat([Shard(r, 3).rows(idx) for r in range(3)]), idx)


@pytest.mark.parametrize(
    ("devices", "over", "says"),
    [
        (0, {}, "devices must be 1 or more"),
        (4, {"optimizer": {"batch_size": 6}}, "at least 8"),
    ],
)
def test_device_counts_a_job_cannot_train_with_are_refused(devices, over, says):
    with pytest.raises(SpecError) as err:
        check_devices(devices, torch.device("cpu"), ts.arm_spec(**over))
    assert err.value.field == "devices" and says in str(err.value)


def test_more_gpus_than_visible_are_refused():
    with pytest.raises(SpecError, match="GPU"):
        check_devices(2, torch.device("cuda"), ts.arm_spec())


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["resident", "streamed"])
def test_a_job_on_two_devices_trains_every_arm_as_on_one(monkeypatch, tmp_path, placement):
    """run_job(devices=2): the same history per arm as devices=1 (mlp student, no BatchNorm),
    with the data held in memory or streamed from the data cache (each rank reads its slice)."""
    ts.install_fixed_teacher(monkeypatch)
    outputs = ts.skip_outputs(monkeypatch)
    teacher = ts.write_teacher(tmp_path / "teacher.npy")
    data = ts.write_dataset(tmp_path / "data.npz")
    spec = ts.job_spec(teacher, data, compare=["student"],
                       annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1})  # fmt: skip
    limits = Limits(resident_data_bytes=0) if placement == "streamed" else None
    from akd_core import pipeline

    parallel_runs: list[tuple[int, bool]] = []

    def spy(job, world, hooks):
        parallel_runs.append((world, job.data.decode is not None))
        return train_arm_parallel(job, world, hooks)

    monkeypatch.setattr(pipeline, "train_arm_parallel", spy)
    histories = {}
    for devices in (1, 2):
        run_job(spec, tmp_path / f"out{devices}", devices=devices, cache_dir=tmp_path / "cache",
                limits=limits)  # fmt: skip
        histories[devices] = {arm: s.history for arm, s in outputs.arms.items()}
    for arm, one in histories[1].items():
        two = histories[2][arm]
        assert [h["train_loss"] for h in two] == pytest.approx([h["train_loss"] for h in one])
        assert [h["val_accuracy"] for h in two] == [h["val_accuracy"] for h in one]
    # Both arms of the second run, none of the first; streamed: the ranks got row ids.
    assert parallel_runs == [(2, placement == "streamed")] * 2


def test_akd_distill_passes_devices_to_the_run(monkeypatch, tmp_path):
    from akd_core import cli, pipeline

    seen = {}

    def fake_run_job(spec, out_dir, **kwargs):
        seen.update(kwargs)
        raise SpecError("stop here", field="devices")

    monkeypatch.setattr(pipeline, "run_job", fake_run_job)
    spec = tmp_path / "spec.json"
    (tmp_path / "t.onnx").write_bytes(
        b"never read: the run is replaced"
    )  # the CLI checks it exists
    spec.write_text('{"teacher": {"source": "file:t.onnx"}, "student": {"arch": "mlp"}, '
                    '"dataset": {"source": "builtin:digits"}}')  # fmt: skip
    assert cli.main([str(spec), "--devices", "2", "--quiet"]) != 0
    assert seen["devices"] == 2


def test_ranks_that_end_without_the_final_checkpoint_fail_the_arm(monkeypatch, tmp_path):
    """The launcher never trains the arm itself when the ranks did not finish it."""
    from akd_core import distributed
    from akd_core.errors import TrainingError

    class Finished:
        processes: list = []

        def join(self, timeout=None):
            return True

    monkeypatch.setattr(distributed.mp, "start_processes", lambda *a, **k: Finished())
    job = ParallelArm("student", _spec(), _student(), ts.synthetic_train_data(), "cpu", tmp_path,
                      Progress(1), None, "job", False)  # fmt: skip
    with pytest.raises(TrainingError, match="before the arm was done"):
        train_arm_parallel(job, 2, Hooks())
