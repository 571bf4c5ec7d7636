"""A checkpoint written by an earlier version of the trainer resumes to the same run.

The fixture is a mid-Phase-2 checkpoint of `trainer_support.annealing_trainer` (cancelled
in Phase-2 epoch 2) written by the trainer before it was split into modules, with the
figures of that trainer's uninterrupted run: resuming it now must give the same epochs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from akd_core.checkpoint import checkpoint_path
from akd_core.events import Hooks
from tests.akd_core import trainer_support as ts

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_checkpoint_of_the_earlier_trainer_resumes_to_its_uninterrupted_run(tmp_path):
    expected = json.loads((FIXTURES / "annealing_mid_phase2.json").read_text())
    ckpt = checkpoint_path(tmp_path, "annealing")
    ckpt.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "annealing_mid_phase2.pt", ckpt)

    result = ts.annealing_trainer(tmp_path, Hooks()).run(resume=True)

    history = [r.to_dict() | {"seconds": None} for r in result.history]  # seconds vary
    assert len(history) == 4  # three epochs from the file, the fourth trained after resuming
    for got, want in zip(history, expected["history"], strict=True):
        assert [k for k, v in got.items() if v is None] == [k for k, v in want.items() if v is None]
        assert _set(got) == pytest.approx(_set(want), rel=1e-6)
    best = (result.best_val_accuracy, result.best_phase, result.best_epoch)
    assert best == (expected["best_val_accuracy"], expected["best_phase"], expected["best_epoch"])
    sums = {k: float(v.double().sum()) for k, v in result.best_state.items()}
    assert sums == pytest.approx(expected["best_state_sums"], rel=1e-6)


def _set(record: dict[str, object]) -> dict[str, object]:
    """The fields of an epoch record that hold a value (T and phi are None in Phase 2)."""
    return {k: v for k, v in record.items() if v is not None}
