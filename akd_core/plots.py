"""The model card's plots as PNG (matplotlib, Agg): training curves, every method, size vs accuracy.

Each writer returns what it drew, read back from the figure's artists, so a test can check
the series without looking at pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akd_core.fileio import atomic_write

LOSS_PHI = "history.png"  # the name older jobs and clients know
VAL_ACCURACY = "val_accuracy.png"
SIZE_ACCURACY = "accuracy_vs_size.png"
PLOT_FILES = (LOSS_PHI, VAL_ACCURACY, SIZE_ACCURACY)
BOUNDARY = "phase 1 | phase 2"

Series = dict[str, list[tuple[float, float]]]  # label -> drawn (x, y) points


@dataclass(frozen=True)
class Plot:
    """One written PNG and the series drawn in it, per axes title."""

    file: str
    series: dict[str, Series]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: the worker and CI have none
    import matplotlib.pyplot as plt

    return plt


def _drawn(fig: Any) -> dict[str, Series]:
    """Every labelled line and scatter of `fig`, by axes title."""
    out: dict[str, Series] = {}
    for ax in fig.axes:
        series: Series = {}
        for line in ax.get_lines():
            xs, ys = line.get_xdata(), line.get_ydata()
            series[line.get_label()] = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        for coll in ax.collections:
            series[coll.get_label()] = [(float(x), float(y)) for x, y in coll.get_offsets()]
        out[ax.get_title()] = series
    return out


def _save(plt: Any, fig: Any, path: Path) -> dict[str, Series]:
    drawn = _drawn(fig)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return drawn


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def phase_boundary(history: list[dict[str, Any]]) -> float | None:
    """The x between the last Phase 1 epoch and the first Phase 2 one (None without both)."""
    phases = [h["phase"] for h in history]
    if 1 not in phases or 2 not in phases:
        return None
    return phases.index(2) + 0.5


def plot_loss_phi(path: Path, report: dict[str, Any]) -> dict[str, Series]:
    """Train loss and Phi(T) per epoch of the main method, the phase boundary marked."""
    plt = _pyplot()
    hist = report["history"]
    x = list(range(1, len(hist) + 1))
    fig, (loss_ax, phi_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_ax.plot(x, [h["train_loss"] for h in hist], marker=".", label="train loss")
    loss_ax.set_title("train loss (phase 1: MSE, phase 2: CE)")
    phi_ax.plot(x, [_nan(h["phi"]) for h in hist], marker=".", label="Phi(T)")
    phi_ax.set_title("Phi(T) = 1 - (T - 1) / tau_max")
    phi_ax.set_ylim(0, 1.05)
    boundary = phase_boundary(hist)
    for ax in (loss_ax, phi_ax):
        if boundary is not None:
            ax.axvline(boundary, color="grey", linestyle="--", label=BOUNDARY)
        ax.set_xlabel("epoch")
        ax.legend()
    return _save(plt, fig, path)


def plot_val_accuracy(path: Path, report: dict[str, Any]) -> dict[str, Series]:
    """Validation accuracy per epoch of every trained method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    arms = {report["method"]: report["history"]}
    arms.update({arm: b["history"] for arm, b in report["baselines"].items()})
    for arm, hist in arms.items():
        ax.plot(range(1, len(hist) + 1), [h["val_accuracy"] for h in hist], marker=".", label=arm)
    boundary = phase_boundary(report["history"])
    if boundary is not None:
        ax.axvline(boundary, color="grey", linestyle="--", label=BOUNDARY)
    ax.set_title("validation accuracy per epoch")
    ax.set_xlabel("epoch")
    ax.legend()
    return _save(plt, fig, path)


def size_accuracy_points(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(file bytes, test accuracy) of the teacher, each student and the INT8 copy, where known."""
    points: dict[str, tuple[float, float]] = {}
    teacher = report["teacher"]
    if teacher.get("size_bytes"):
        points["teacher"] = (teacher["size_bytes"], teacher["accuracy"])
    size = report["onnx"]["size_bytes"]  # every arm trains the same architecture
    points[f"student ({report['method']})"] = (size, report["student"]["accuracy"])
    for arm, b in report["baselines"].items():
        points[f"baseline: {arm}"] = (size, b["accuracy"])
    int8 = report.get("int8")
    if int8 and int8.get("size_bytes"):
        points["INT8" + ("" if int8.get("kept") else " (not shipped)")] = (
            int8["size_bytes"], int8["accuracy"],
        )  # fmt: skip
    return points


def plot_size_accuracy(path: Path, report: dict[str, Any]) -> dict[str, Series]:
    """Test accuracy against model file size (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (size, acc) in size_accuracy_points(report).items():
        ax.scatter([size], [acc], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("ONNX / teacher file size (bytes)")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy against model size")
    ax.legend(fontsize="small")
    return _save(plt, fig, path)


def write_plots(out_dir: Path, report: dict[str, Any]) -> list[Plot]:
    """Write the three PNGs next to report.md; returns what each one drew."""
    writers = (plot_loss_phi, plot_val_accuracy, plot_size_accuracy)
    return [
        Plot(name, w(out_dir / name, report)) for name, w in zip(PLOT_FILES, writers, strict=True)
    ]
