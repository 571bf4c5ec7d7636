"""The demo's figures: per-method accuracies over seeds, summarised as mean ± std."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

# Arm names in a job's report.json -> what the demo and the bench call them, in print order.
METHODS = ("annealing", "kd", "student")
LABELS = {"annealing": "Annealing-KD", "kd": "Hinton KD", "student": "student-only"}


def arm_accuracies(report: Mapping[str, Any], key: str = "accuracy") -> dict[str, float]:
    """{method: accuracy} of every arm in a report.json (`key`: accuracy = test, or val_accuracy)."""
    out = {"annealing": float(report["student"][key])}
    for name, arm in report.get("baselines", {}).items():
        out[name] = float(arm[key])
    return out


def collect(reports: Iterable[Mapping[str, Any]], key: str = "accuracy") -> dict[str, list[float]]:
    """{method: [accuracy per report]} for the methods present in every report."""
    per_report = [arm_accuracies(r, key) for r in reports]
    if not per_report:
        return {}
    common = [m for m in METHODS if all(m in accs for accs in per_report)]
    return {m: [accs[m] for accs in per_report] for m in common}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("mean_std of no values")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def pm(values: list[float], percent: bool = True) -> str:
    """'97.50 ± 0.42' (percent) or '0.9750 ± 0.0042' for the values' mean and std."""
    mean, sd = mean_std(values)
    if percent:
        return f"{100 * mean:.2f} ± {100 * sd:.2f}"
    return f"{mean:.4f} ± {sd:.4f}"


def gain(values: dict[str, list[float]], method: str, over: str) -> list[float]:
    """Per-seed accuracy difference method - over (paired: same seed, teacher and data)."""
    return [a - b for a, b in zip(values[method], values[over], strict=True)]


def table(values: dict[str, list[float]]) -> list[str]:
    """Markdown rows: method | mean ± std (%) | per seed (%)."""
    rows = ["| method | accuracy, mean ± std (%) | per seed (%) |", "|---|---|---|"]
    for m, v in values.items():
        seeds = ", ".join(f"{100 * a:.2f}" for a in v)
        rows.append(f"| {LABELS.get(m, m)} | {pm(v)} | {seeds} |")
    return rows
