"""Checkpoints: exact round trip, atomic writes, no unpickling, and no resume across jobs."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch
from torch import nn

from akd_core import checkpoint
from akd_core.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from akd_core.errors import SpecError, TrainingError
from akd_core.pipeline import run_job
from tests.akd_core import trainer_support as ts


def _trained_linear() -> tuple[nn.Linear, torch.optim.Optimizer]:
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    torch.manual_seed(5)
    generator = torch.Generator().manual_seed(7)
    model, opt = _trained_linear()
    history = [{"phase": 1, "epoch": 1, "T": 2, "phi": 0.5, "val_accuracy": 0.25}]
    path = checkpoint_path(tmp_path, "kd")
    save_checkpoint(
        path,
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(generator),
         "history": history, "done": False},
    )  # fmt: skip
    # What the run would draw next, from the global RNG and from its own generator.
    next_global, next_own = torch.rand(5), torch.rand(5, generator=generator)

    torch.manual_seed(999)  # a resumed process starts with other RNG states
    other = torch.Generator().manual_seed(0)
    saved = load_checkpoint(path)
    assert saved is not None and path == tmp_path / "checkpoints" / "kd.pt"
    restore_rng(saved["rng"], other)
    assert torch.equal(torch.rand(5), next_global)
    assert torch.equal(torch.rand(5, generator=other), next_own)
    for k, v in model.state_dict().items():
        assert torch.equal(saved["model"][k], v), k
    fresh = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=0.1)
    fresh.load_state_dict(saved["optimizer"])
    moments = fresh.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(moments, opt.state_dict()["state"][0]["exp_avg"])
    assert saved["history"] == history and saved["done"] is False


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = checkpoint_path(tmp_path, "annealing")
    save_checkpoint(path, {"epoch": 3})

    def torn_save(obj, f):  # writes half a file, then the process "dies"
        Path(f).write_bytes(b"PK\x03\x04 torn")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"epoch": 4})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 3}
    assert [p.name for p in path.parent.iterdir()] == ["annealing.pt"]  # no temp file left
    assert load_checkpoint(checkpoint_path(tmp_path, "kd")) is None  # nothing saved: fresh


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "done": True, "run_key": _Payload(marker)}, path)


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    path = checkpoint_path(tmp_path, "annealing")
    _plant(path, marker)
    with pytest.raises(TrainingError) as err:
        load_checkpoint(path)
    assert not marker.exists()
    assert err.value.field == "resume"
    msg = str(err.value)
    assert "checkpoints/annealing.pt is not a checkpoint this service wrote" in msg
    assert "objects other than tensors" in msg and "Delete it" in msg
    assert "weights_only" not in msg and str(tmp_path) not in msg


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"", "damaged"), (b"not a torch file", "tensors"), (None, "holds a Tensor")],
)
def test_damaged_or_foreign_checkpoints_get_a_clear_error(tmp_path, content, why):
    path = checkpoint_path(tmp_path, "kd")
    path.parent.mkdir(parents=True)
    if content is None:
        torch.save(torch.zeros(2), path)  # a torch file, but not a checkpoint dict
    else:
        path.write_bytes(content)
    with pytest.raises(TrainingError, match=why) as err:
        load_checkpoint(path)
    assert err.value.field == "resume"


def _job(tmp_path, teacher_seed=0, nudge=0.0, **over):
    """The job's files, rewritten in place: the spec (paths included) stays the same text."""
    teacher = ts.write_teacher(tmp_path / "teacher.npy", teacher_seed, 1.0)
    data = ts.write_dataset(tmp_path / "data.npz", nudge=nudge)
    return ts.job_spec(teacher, data, min_teacher_accuracy=0.0, **over)


def test_resume_refuses_another_data_teacher_or_spec(monkeypatch, tmp_path):
    ts.install_fixed_teacher(monkeypatch)
    ts.skip_outputs(monkeypatch)
    log, _ = ts.spy_training(monkeypatch)
    out = tmp_path / "out"
    original = _job(tmp_path)
    run_job(original, out, cache_dir=tmp_path / "cache")
    trained_steps = len(log.phi)
    assert trained_steps == 12

    changed = {
        "data": {"nudge": 0.5},  # one pixel of one training image
        "teacher": {"teacher_seed": 1},  # other weights in the same file name
        "spec": {"optimizer": {"batch_size": 16, "lr": 0.02}},
    }
    for what, change in changed.items():
        spec = _job(tmp_path, **change)  # writes the changed files in place
        assert (spec == original) is (what != "spec")  # data and teacher: the same spec text
        with pytest.raises(SpecError, match="another spec, dataset or teacher") as err:
            run_job(spec, out, cache_dir=tmp_path / "cache", resume=True)
        assert err.value.field == "resume", what
    # The same job resumes: its arm is done, so nothing is trained again.
    run_job(_job(tmp_path), out, cache_dir=tmp_path / "cache", resume=True)
    assert len(log.phi) == trained_steps


def test_run_job_refuses_a_planted_checkpoint_before_training(monkeypatch, tmp_path):
    ts.install_fixed_teacher(monkeypatch)
    ts.skip_outputs(monkeypatch)
    log, _ = ts.spy_training(monkeypatch)
    marker, out = tmp_path / "payload-ran", tmp_path / "out"
    _plant(checkpoint_path(out, "annealing"), marker)
    with pytest.raises(TrainingError, match="not a checkpoint this service wrote"):
        run_job(_job(tmp_path), out, resume=True)
    assert not marker.exists() and log.phi == []
