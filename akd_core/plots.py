"""The model card's plots as PNG: training curves, every method, size vs accuracy.

Drawn with Pillow (already a dependency for image datasets) rather than matplotlib: the
three plots take milliseconds instead of the 1-3 s that importing matplotlib and laying out
its figures cost after every job. Each writer returns what it drew (the data points of each
labelled series, per axes title), so a test can check the series without looking at pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akd_core.fileio import atomic_write

LOSS_PHI = "history.png"  # the name older jobs and clients know
VAL_ACCURACY = "val_accuracy.png"
SIZE_ACCURACY = "accuracy_vs_size.png"
PLOT_FILES = (LOSS_PHI, VAL_ACCURACY, SIZE_ACCURACY)
BOUNDARY = "phase 1 | phase 2"

Series = dict[str, list[tuple[float, float]]]  # label -> drawn (x, y) points
Point = tuple[float, float]
# matplotlib's tab10 colours, in order; the boundary is grey.
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
GREY, INK, GRID = "#808080", "#222222", "#e6e6e6"
HEIGHT, LEGEND_W, PAD = 340, 170, 50


@dataclass(frozen=True)
class Plot:
    """One written PNG and the series drawn in it, per axes title."""

    file: str
    series: dict[str, Series]


@dataclass
class Axes:
    """One panel: its title and labels, and what to draw (kind: line, scatter or vline)."""

    title: str
    xlabel: str = "epoch"
    ylabel: str = ""
    xlog: bool = False
    ylim: tuple[float, float] | None = None
    items: list[tuple[str, str, list[Point]]] = field(default_factory=list)

    def add(self, kind: str, label: str, points: list[Point]) -> None:
        """Queue a series (`vline`: points give its x; it spans the whole y range)."""
        self.items.append((kind, label, [(float(x), float(y)) for x, y in points]))


def _finite(points: list[Point]) -> list[Point]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    """About 5 round tick values between lo and hi (powers of ten on a log axis)."""
    if log:
        return [10.0**e for e in range(math.ceil(lo), math.floor(hi) + 1)]
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float, log: bool) -> str:
    if log:
        return f"1e{round(math.log10(v))}"
    return f"{v:.4g}"


def _span(values: list[float], limits: tuple[float, float] | None) -> tuple[float, float]:
    if limits is not None:
        return limits
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.5
    return lo - pad, hi + pad


def _draw_axes(img: Any, box: tuple[int, int, int, int], ax: Axes) -> Series:
    """Draw `ax` into the pixel box (x0, y0, x1, y1) of `img`; returns its series."""
    from PIL import ImageDraw, ImageFont

    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=11)
    x0, y0, x1, y1 = box
    pts = [p for kind, _, ps in ax.items if kind != "vline" for p in _finite(ps)]
    fx = (lambda v: math.log10(v)) if ax.xlog else (lambda v: v)
    # Every epoch spans the x axis, also one whose y is not a number (Phi in phase 2).
    xs = [fx(x) for k, _, ps in ax.items if k != "vline" for x, _ in ps
          if math.isfinite(x) and (not ax.xlog or x > 0)]  # fmt: skip
    xs += [fx(x) for kind, _, ps in ax.items if kind == "vline" for x, _ in ps]
    xlo, xhi = _span(xs, None)
    if ax.xlog:
        xlo, xhi = math.floor(xlo), math.ceil(xhi)
    ylo, yhi = _span([y for _, y in pts], ax.ylim)

    def px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (fx(x) - xlo) / (xhi - xlo) * (x1 - x0),
                y1 - (y - ylo) / (yhi - ylo) * (y1 - y0))  # fmt: skip

    for t in _ticks(xlo, xhi, ax.xlog):
        u = px(t, ylo)[0]
        draw.line([(u, y0), (u, y1)], fill=GRID)
        draw.text((u, y1 + 4), _label(t, ax.xlog), fill=INK, font=font, anchor="ma")
    for t in _ticks(ylo, yhi, False):
        v = px(10**xlo if ax.xlog else xlo, t)[1]
        draw.line([(x0, v), (x1, v)], fill=GRID)
        draw.text((x0 - 4, v), _label(t, False), fill=INK, font=font, anchor="rm")
    draw.rectangle(box, outline=INK)
    draw.text(((x0 + x1) / 2, y0 - 8), ax.title, fill=INK, font=font, anchor="md")
    draw.text(((x0 + x1) / 2, y1 + 20), ax.xlabel, fill=INK, font=font, anchor="ma")
    if ax.ylabel:
        draw.text((x0, y0 - 22), ax.ylabel, fill=INK, font=font, anchor="ld")
    series: Series = {}
    legend: list[tuple[str, str]] = []
    for i, (kind, label, points) in enumerate(ax.items):
        color = GREY if kind == "vline" else COLORS[i % len(COLORS)]
        if kind == "vline":
            points = [(points[0][0], ylo), (points[0][0], yhi)]
            u = px(points[0][0], ylo)[0]
            for v in range(y0, y1, 8):  # dashed
                draw.line([(u, v), (u, min(v + 4, y1))], fill=color, width=1)
        else:
            run: list[tuple[float, float]] = []
            for x, y in [*points, (math.nan, math.nan)]:
                if math.isfinite(x) and math.isfinite(y) and (not ax.xlog or x > 0):
                    run.append(px(x, y))
                    continue
                if kind == "line" and len(run) > 1:
                    draw.line(run, fill=color, width=2)
                r = 2 if kind == "line" else 5
                for u, v in run:
                    draw.ellipse([(u - r, v - r), (u + r, v + r)], fill=color)
                run = []
        series[label] = points
        legend.append((label, color))
    for i, (label, color) in enumerate(legend):  # to the right of the panel
        v = y0 + 8 + 16 * i
        draw.rectangle([(x1 + 10, v - 4), (x1 + 22, v + 4)], fill=color)
        draw.text((x1 + 28, v), label, fill=INK, font=font, anchor="lm")
    return series


def _render(path: Path, panels: list[Axes]) -> dict[str, Series]:
    """Draw the panels side by side into one PNG at `path`."""
    from PIL import Image

    panel_w = 300 + LEGEND_W
    img = Image.new("RGB", (len(panels) * (panel_w + PAD) + 20, HEIGHT), "white")
    drawn = {}
    for i, ax in enumerate(panels):
        left = PAD + i * (panel_w + PAD)
        drawn[ax.title] = _draw_axes(img, (left, 40, left + panel_w - LEGEND_W, HEIGHT - 50), ax)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return drawn


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def phase_boundary(history: list[dict[str, Any]]) -> float | None:
    """The x between the last Phase 1 epoch and the first Phase 2 one (None without both)."""
    phases = [h["phase"] for h in history]
    if 1 not in phases or 2 not in phases:
        return None
    return phases.index(2) + 0.5


def _epochs(values: list[float]) -> list[Point]:
    return [(float(i), v) for i, v in enumerate(values, start=1)]


def plot_loss_phi(path: Path, report: dict[str, Any]) -> dict[str, Series]:
    """Train loss and Phi(T) per epoch of the main method, the phase boundary marked."""
    hist = report["history"]
    loss_ax = Axes("train loss (phase 1: MSE, phase 2: CE)")
    loss_ax.add("line", "train loss", _epochs([h["train_loss"] for h in hist]))
    phi_ax = Axes("Phi(T) = 1 - (T - 1) / tau_max", ylim=(0.0, 1.05))
    phi_ax.add("line", "Phi(T)", _epochs([_nan(h["phi"]) for h in hist]))
    boundary = phase_boundary(hist)
    if boundary is not None:
        for ax in (loss_ax, phi_ax):
            ax.add("vline", BOUNDARY, [(boundary, 0.0)])
    return _render(path, [loss_ax, phi_ax])


def plot_val_accuracy(path: Path, report: dict[str, Any]) -> dict[str, Series]:
    """Validation accuracy per epoch of every trained method."""
    ax = Axes("validation accuracy per epoch")
    arms = {report["method"]: report["history"]}
    arms.update({arm: b["history"] for arm, b in report["baselines"].items()})
    for arm, hist in arms.items():
        ax.add("line", arm, _epochs([h["val_accuracy"] for h in hist]))
    boundary = phase_boundary(report["history"])
    if boundary is not None:
        ax.add("vline", BOUNDARY, [(boundary, 0.0)])
    return _render(path, [ax])


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
    ax = Axes("test accuracy against model size", "ONNX / teacher file size (bytes, log)",
              "test accuracy", xlog=True)  # fmt: skip
    for label, point in size_accuracy_points(report).items():
        ax.add("scatter", label, [point])
    return _render(path, [ax])


def write_plots(out_dir: Path, report: dict[str, Any]) -> list[Plot]:
    """Write the three PNGs next to report.md; returns what each one drew."""
    writers = (plot_loss_phi, plot_val_accuracy, plot_size_accuracy)
    return [
        Plot(name, w(out_dir / name, report)) for name, w in zip(PLOT_FILES, writers, strict=True)
    ]
