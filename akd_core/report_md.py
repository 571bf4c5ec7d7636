"""report.md: the model card a person reads, with the per-epoch plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from akd_core.fileio import atomic_write, atomic_write_text

PLOT = "history.png"


def write_model_card(out_dir: Path, report: dict[str, Any]) -> None:
    """Write history.png (loss, Phi, validation accuracy per epoch) and report.md."""
    _plot_history(out_dir / PLOT, report)
    atomic_write_text(out_dir / "report.md", render_markdown(report))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def render_markdown(r: dict[str, Any]) -> str:
    """The model card as Markdown text."""
    s, t, o = r["student"], r["teacher"], r["onnx"]
    spec = r["spec"]
    rows = [
        f"| teacher ({t['format']}) | {_pct(t['accuracy'])} | {_num(r['params']['teacher'])} |",
        f"| **student ({s['arch']}, {r['method']})** | **{_pct(s['accuracy'])}** | "
        f"{_num(s['params'])} |",
    ]
    rows += [
        f"| baseline: {arm} | {_pct(b['accuracy'])} | {_num(s['params'])} |"
        for arm, b in r["baselines"].items()
    ]
    ann = spec["annealing"]
    lines = [
        f"# Distilled student: {s['arch']}",
        "",
        f"Method **{r['method']}** (Annealing-KD: Jafari et al., EACL 2021), "
        f"tau_max = {ann['tau_max']}, Phase 1 = {ann['phase1_epochs']} epochs, "
        f"Phase 2 = {ann['phase2_epochs']} epochs; every arm trained for "
        f"{ann['phase1_epochs'] + ann['phase2_epochs']} epochs on the same data, seed {spec['seed']}.",
        "",
        "## Accuracy on the test split",
        "",
        "| model | test accuracy | parameters |",
        "|---|---|---|",
        *rows,
        "",
        f"Compression: {r['compression']:.1f}x fewer parameters than the teacher."
        if r.get("compression")
        else "Compression: teacher parameter count unknown.",
        f"The best student was selected on the validation split (phase {s['best_phase']}, "
        f"epoch {s['best_epoch']}, validation accuracy {_pct(s['val_accuracy'])}); "
        "the test split was used only for the figures above.",
        "",
        "## The ONNX student",
        "",
        f"- `student.onnx`: {o['size_bytes']:,} bytes, opset {o['opset']}, dynamic batch axis, "
        f"one self-contained file; median latency at batch 1: {o['latency_ms_batch1']:.3f} ms "
        f"(onnxruntime, CPU).",
        f"- Parity with the PyTorch student on the test split: max |diff| "
        f"{o['parity_max_abs_diff']:.2e}, argmax agreement {_pct(o['argmax_agreement'])}, "
        f"ONNX accuracy {_pct(o['accuracy'])}.",
    ]
    if r.get("int8"):
        i = r["int8"]
        verdict = "kept as `student.int8.onnx`" if i["kept"] else f"not kept: {i['reason']}"
        lines.append(
            f"- INT8 (dynamic quantization): accuracy {_pct(i['accuracy'])}, "
            f"{i['size_bytes']:,} bytes, {i['latency_ms_batch1']:.3f} ms at batch 1; {verdict}."
        )
    lines += [
        "",
        "## Preprocessing (the teacher saw exactly this too)",
        "",
        f"`{json.dumps(r['preprocessing'])}`; input shape {r['dataset'].get('input_shape')}. "
        "The same facts are stored in the ONNX metadata (`preprocessing`, `input_shape`, `labels`).",
        "",
        "## Training history",
        "",
        f"![loss, Phi and validation accuracy per epoch]({PLOT})",
        "",
        "| phase | epoch | T | Phi | train loss | val accuracy |",
        "|---|---|---|---|---|---|",
        *[
            f"| {h['phase']} | {h['epoch']} | {h['T'] if h['T'] is not None else '-'} | "
            f"{h['phi'] if h['phi'] is not None else '-'} | {h['train_loss']:.4f} | "
            f"{_pct(h['val_accuracy'])} |"
            for h in r["history"]
        ],
        "",
        f"Device: {r['device']}"
        + (f", mixed precision {r['mixed_precision']}" if r.get("mixed_precision") else "")
        + f". Teacher logits cache: {'hit' if r['timings']['teacher_cache_hit'] else 'built'} "
        f"in {r['timings']['teacher_cache_s']:.2f} s.",
        "",
    ]
    return "\n".join(lines)


def _plot_history(path: Path, r: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = r["history"]
    x = list(range(1, len(hist) + 1))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(x, [h["train_loss"] for h in hist], marker=".")
    axes[0].set_title("train loss (phase 1: MSE, phase 2: CE)")
    axes[1].plot(x, [h["phi"] if h["phi"] is not None else float("nan") for h in hist], marker=".")
    axes[1].set_title("Phi(T) (phase 1)")
    axes[1].set_ylim(0, 1.05)
    axes[2].plot(x, [h["val_accuracy"] for h in hist], marker=".", label=r["method"])
    for arm, b in r["baselines"].items():
        axes[2].plot(
            range(1, len(b["history"]) + 1), [h["val_accuracy"] for h in b["history"]], label=arm
        )
    axes[2].set_title("validation accuracy")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
