"""Text students' training defaults (the paper's GLUE recipe) and the linear warm-up schedule."""

from __future__ import annotations

import pytest

from akd_core.optim import lr_factor
from akd_core.spec import parse_spec
from akd_core.text.defaults import text_defaults


def _spec(**extra):
    base = {"teacher": {"source": "file:t", "format": "hf"}, "student": {"arch": "shrink-teacher"},
            "dataset": {"source": "file:d.jsonl"}}  # fmt: skip
    base.update(extra)
    return parse_spec(base)


def test_a_student_from_the_teacher_gets_the_glue_recipe():
    s = text_defaults(_spec())
    o, a = s.optimizer, s.annealing
    assert (o.name, o.lr, o.resolved_schedule, o.batch_size) == ("adamw", 2e-5, "linear", 32)
    assert (a.tau_max, a.phase1_epochs, a.phase2_epochs) == (7, 14, 4)


def test_a_random_bert_gets_a_larger_step_and_set_fields_are_kept():
    s = text_defaults(_spec(student={"arch": "bert"}, optimizer={"lr": 3e-4, "batch_size": 8},
                            annealing={"tau_max": 7, "phase1_epochs": 21, "phase2_epochs": 0}))  # fmt: skip
    assert (s.optimizer.lr, s.optimizer.batch_size) == (3e-4, 8)
    assert (s.annealing.tau_max, s.annealing.phase1_epochs, s.annealing.phase2_epochs) == (7, 21, 0)
    assert text_defaults(_spec(student={"arch": "bert"})).optimizer.lr == 1e-4
    kept = text_defaults(_spec(annealing={"tau_max": 2, "phase1_epochs": 4}))
    assert (kept.annealing.tau_max, kept.annealing.phase1_epochs) == (2, 4)
    only_e2 = text_defaults(_spec(annealing={"phase2_epochs": 1})).annealing
    assert (only_e2.tau_max, only_e2.phase1_epochs, only_e2.phase2_epochs) == (7, 14, 1)


def test_linear_schedule_warms_up_then_decays_to_zero():
    # 10 epochs x 10 steps: warm-up over the first 10 steps, then linear decay.
    f = [lr_factor("linear", s, 10, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5)
    assert f[99] == pytest.approx(1 / 90) and all(
        b <= a for a, b in zip(f[9:], f[10:], strict=False)
    )
