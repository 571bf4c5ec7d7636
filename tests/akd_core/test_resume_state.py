"""The trainer's resume state: an exact round trip through the checkpoint file, the file's
layout unchanged, and a checkpoint with other fields refused, naming the field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import nn

from akd_core.checkpoint import checkpoint_path, load_checkpoint, rng_state, save_checkpoint
from akd_core.errors import TrainingError
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.records import BestEpoch, EpochRecord, LoopState, ResumeState, load_resume_state
from akd_core.trainer import ArmTrainer, Progress
from tests.akd_core import trainer_support as ts

# The checkpoint file's keys as the trainer wrote them before the dataclasses: files written
# by an earlier version must keep loading.
FILE_KEYS = {
    "phase_idx", "epoch", "history", "best", "train_seconds",
    "arm", "done", "model", "optimizer", "scheduler", "rng", "scaler", "run_key",
}  # fmt: skip
REFUSED = (
    "checkpoints/annealing.pt is not a checkpoint this service wrote ({why}); it was not "
    "loaded. Delete it to start the arm afresh, or run the job in a new output folder"
)


def _same(a: Any, b: Any) -> bool:
    """Deep equality that compares tensors by value (and dtype, shape) and dataclasses by field."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and _same(vars(a), vars(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _mid_phase_state() -> ResumeState:
    """A state as saved after Phase-2 epoch 1 of an annealing arm, every field distinct."""
    torch.manual_seed(3)
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    sched.step()
    history = [
        EpochRecord(1, 1, 2, 0.5, 1.25, 0.5, 0.05, 0.75),
        EpochRecord(1, 2, 1, 1.0, 0.875, 0.625, 0.025, 0.5),
        EpochRecord(2, 1, None, None, 0.5, 0.75, 0.0125, 0.25),
    ]
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    loop = LoopState(
        phase_idx=1,
        epoch=1,
        history=history,
        best=BestEpoch(val_accuracy=0.75, epoch=1, phase=2, state=weights),
        train_seconds=1.5,
    )
    return ResumeState(
        loop=loop,
        arm="annealing",
        done=False,
        run_key="job-7",
        model={k: v + 1 for k, v in weights.items()},
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        rng=rng_state(torch.Generator().manual_seed(11)),
        scaler=torch.amp.GradScaler("cuda", enabled=False).state_dict(),
    )


def test_a_resume_state_round_trips_through_the_checkpoint_exactly(tmp_path):
    state, path = _mid_phase_state(), checkpoint_path(tmp_path, "annealing")
    save_checkpoint(path, state.to_dict())
    loaded = load_resume_state(path)
    assert loaded is not None and _same(loaded, state)
    assert loaded.loop.history[2] == EpochRecord(2, 1, None, None, 0.5, 0.75, 0.0125, 0.25)
    # The file is still the flat dict of plain containers that weights_only loading reads.
    raw = load_checkpoint(path)
    assert raw is not None and set(raw) == FILE_KEYS
    assert raw["history"][0] == {
        "phase": 1, "epoch": 1, "T": 2, "phi": 0.5, "train_loss": 1.25,
        "val_accuracy": 0.5, "lr": 0.05, "seconds": 0.75,
    }  # fmt: skip
    assert set(raw["best"]) == {"val_accuracy", "epoch", "phase", "state"}


def test_a_state_without_a_best_epoch_round_trips(tmp_path):
    state = dataclasses.replace(_mid_phase_state(), loop=LoopState(phase_idx=1))
    path = checkpoint_path(tmp_path, "annealing")
    save_checkpoint(path, state.to_dict())
    loaded = load_resume_state(path)
    assert loaded is not None and loaded.loop == LoopState(phase_idx=1)


def test_no_checkpoint_means_no_resume_state(tmp_path):
    assert load_resume_state(checkpoint_path(tmp_path, "annealing")) is None


def _without(*keys: str):
    return lambda d: {k: v for k, v in d.items() if k not in keys}


def _with(**more: Any):
    return lambda d: {**d, **more}


def _history(edit):
    return lambda d: {**d, "history": edit(d["history"])}


def _best(edit):
    return lambda d: {**d, "best": edit(d["best"])}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_without("scaler"), "it lacks the field 'scaler'"),
        (_without("rng", "scaler"), "it lacks the fields 'rng', 'scaler'"),
        (_with(ema={}), "it has the field 'ema' that this version does not write"),
        (_with(b=1, a=2), "it has the fields 'a', 'b' that this version does not write"),
        (_history(lambda h: {"0": h[0]}), "its history is a dict, not a list"),
        (_history(lambda h: [h[0], [1, 2]]), "its history[1] is a list, not a record"),
        (
            _history(lambda h: [h[0], _without("lr")(h[1])]),
            "its history[1] lacks the field 'lr'",
        ),
        (
            _history(lambda h: [_with(acc=1.0)(h[0])]),
            "its history[0] has the field 'acc' that this version does not write",
        ),
        (_best(lambda b: "epoch 2"), "its best is a str, not a record"),
        (_best(_without("state")), "its best lacks the field 'state'"),
        (_best(_with(loss=0.1)), "its best has the field 'loss' that this version does not write"),
    ],
)
def test_a_checkpoint_with_other_fields_is_refused_naming_the_field(tmp_path, change, why):
    path = checkpoint_path(tmp_path, "annealing")
    save_checkpoint(path, change(_mid_phase_state().to_dict()))
    with pytest.raises(TrainingError) as err:
        load_resume_state(path)
    assert err.value.message == REFUSED.format(why=why)
    assert err.value.field == "resume"


def test_resuming_from_a_checkpoint_with_a_missing_field_trains_nothing(tmp_path):
    spec = ts.arm_spec(annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1})
    path = checkpoint_path(tmp_path, "annealing")
    save_checkpoint(path, _without("scaler")(_mid_phase_state().to_dict()))
    events: list = []
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    hooks, data = Hooks(on_event=events.append), ts.synthetic_train_data()
    cpu = torch.device("cpu")
    trainer = ArmTrainer(
        "annealing", spec, model, data, cpu, tmp_path, hooks, Progress(3), run_key="job-7"
    )
    with pytest.raises(TrainingError, match="it lacks the field 'scaler'"):
        trainer.run(resume=True)
    assert events == []
    assert set(load_checkpoint(path) or {}) == FILE_KEYS - {"scaler"}  # left as it was
