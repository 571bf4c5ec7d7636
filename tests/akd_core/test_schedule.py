"""Golden values for the Annealing-KD temperature schedule (PAPER.md, Phase 1)."""

import pytest

from akd_core.errors import SpecError
from akd_core.schedule import (
    epochs_per_temperature,
    equivalent_softmax_temperature,
    phi,
    phi_schedule,
    temperature_at,
)


def test_paper_example_tau4_e8():
    assert phi_schedule(8, 4) == [0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0]


def test_temperature_steps_down_per_epoch_block():
    assert [temperature_at(e, 8, 4) for e in range(8)] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert [temperature_at(e, 10, 10) for e in range(10)] == list(range(10, 0, -1))


def test_phi_rises_from_one_over_tau_max_to_one():
    sched = phi_schedule(20, 10)
    assert sched[0] == pytest.approx(0.1)
    assert sched[-1] == 1.0
    assert all(a <= b for a, b in zip(sched, sched[1:], strict=False))
    assert phi(10, 10) == pytest.approx(0.1) and phi(1, 10) == 1.0


def test_phi_is_an_annealed_softmax_temperature():
    # Phi(T) * z == z / tau with tau = tau_max / (tau_max - T + 1)
    assert equivalent_softmax_temperature(4, 4) == pytest.approx(4.0)
    assert equivalent_softmax_temperature(3, 4) == pytest.approx(2.0)
    assert equivalent_softmax_temperature(1, 4) == pytest.approx(1.0)


def test_e1_not_multiple_of_tau_max_is_refused():
    with pytest.raises(SpecError) as err:
        epochs_per_temperature(7, 4)
    assert "7" in str(err.value) and "4" in str(err.value)
    assert epochs_per_temperature(20, 10) == 2


def test_t_out_of_range():
    with pytest.raises(ValueError):
        phi(0, 4)
    with pytest.raises(ValueError):
        temperature_at(8, 8, 4)
