"""Schedule edges that `make mutation` showed untested: the smallest valid plans, the refusals
and what they tell the user."""

import pytest

from akd_core.errors import SpecError
from akd_core.schedule import epochs_per_temperature, phi, temperature_at


def test_the_smallest_plans_are_valid():
    # tau_max 1 is plain regression onto the teacher logits; one epoch is a whole Phase 1.
    assert epochs_per_temperature(1, 1) == 1
    assert epochs_per_temperature(2, 1) == 2
    assert [temperature_at(e, 1, 1) for e in range(1)] == [1]
    assert phi(1, 1) == 1.0


@pytest.mark.parametrize(("e1", "tau_max"), [(5, 0), (0, 5), (-4, 2), (4, -2)])
def test_a_zero_or_negative_plan_is_a_spec_error_naming_the_field(e1, tau_max):
    with pytest.raises(SpecError) as err:
        epochs_per_temperature(e1, tau_max)
    assert err.value.field == "annealing.phase1_epochs"
    assert f"phase1_epochs ({e1})" in str(err.value) and f"tau_max ({tau_max})" in str(err.value)


def test_epochs_per_temperature_is_a_whole_number_of_epochs():
    k = epochs_per_temperature(20, 10)
    assert k == 2 and isinstance(k, int)
    temperatures = [temperature_at(e, 20, 10) for e in range(20)]
    assert all(isinstance(t, int) for t in temperatures)  # T is logged as an integer


def test_out_of_range_values_say_what_is_allowed():
    with pytest.raises(ValueError, match=r"T must be in 1\.\.tau_max \(4\), got 5"):
        phi(5, 4)
    with pytest.raises(ValueError, match=r"epoch must be in 0\.\.7, got 8"):
        temperature_at(8, 8, 4)
    with pytest.raises(ValueError, match=r"epoch must be in 0\.\.7, got -1"):
        temperature_at(-1, 8, 4)
