"""The Annealing-KD temperature schedule: T from tau_max down to 1, Phi(T) = 1 - (T-1)/tau_max."""

from __future__ import annotations

from akd_core.errors import SpecError


def phi(T: int, tau_max: int) -> float:
    """Phi(T) = 1 - (T - 1) / tau_max: the factor that scales the teacher logits at T."""
    if not 1 <= T <= tau_max:
        raise ValueError(f"T must be in 1..tau_max ({tau_max}), got {T}")
    return 1.0 - (T - 1) / tau_max


def epochs_per_temperature(phase1_epochs: int, tau_max: int) -> int:
    """k = E1 / tau_max; E1 must be a multiple of tau_max (else Phi would overshoot 1)."""
    if tau_max < 1 or phase1_epochs < 1 or phase1_epochs % tau_max:
        raise SpecError(
            f"phase1_epochs ({phase1_epochs}) must be a positive multiple of tau_max ({tau_max})",
            field="annealing.phase1_epochs",
        )
    return phase1_epochs // tau_max


def temperature_at(epoch: int, phase1_epochs: int, tau_max: int) -> int:
    """The integer T in force during Phase-1 epoch `epoch` (0-based); constant per epoch block."""
    k = epochs_per_temperature(phase1_epochs, tau_max)
    if not 0 <= epoch < phase1_epochs:
        raise ValueError(f"epoch must be in 0..{phase1_epochs - 1}, got {epoch}")
    return tau_max - epoch // k


def phi_schedule(phase1_epochs: int, tau_max: int) -> list[float]:
    """Phi for every Phase-1 epoch, rising from 1/tau_max to 1."""
    return [phi(temperature_at(e, phase1_epochs, tau_max), tau_max) for e in range(phase1_epochs)]


def equivalent_softmax_temperature(T: int, tau_max: int) -> float:
    """Phi(T) * z equals z / tau at tau = tau_max / (tau_max - T + 1): the annealed temperature."""
    return 1.0 / phi(T, tau_max)
