"""report.md: the model card a person reads, rendered from report.json, with its plots and sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from akd_core.fileio import atomic_write, atomic_write_text
from akd_core.plots import LOSS_PHI, SIZE_ACCURACY, VAL_ACCURACY, write_plots
from akd_core.text.report_md import text_card

PLOT = LOSS_PHI
SAMPLE = "sample.npy"  # one test sample as student.onnx takes it, for the card's snippet
ARM_NAMES = {"annealing": "annealing", "kd": "KD", "student": "student-only"}


def write_model_card(
    out_dir: Path, report: dict[str, Any], sample: np.ndarray | None = None
) -> None:
    """Write the plots, `sample` (one test input) as sample.npy, and report.md."""
    write_plots(out_dir, report)
    if sample is not None:
        atomic_write(out_dir / SAMPLE, lambda tmp: _save_npy(tmp, sample))
    atomic_write_text(
        out_dir / "report.md", render_markdown(report, with_sample=sample is not None)
    )


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:  # a file object: np.save would add ".npy" to a path
        np.save(fh, np.ascontiguousarray(array))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def _name(arm: str) -> str:
    return ARM_NAMES.get(arm, arm)


def verdict_lines(r: dict[str, Any]) -> list[str]:
    """Plain sentences: which compared baseline beat the distilled student, and the resolution."""
    n = int(r.get("dataset", {}).get("sizes", {}).get("test") or 0)
    main, acc = r["method"], r["student"]["accuracy"]
    lines = []
    for arm, b in r["baselines"].items():
        diff = b["accuracy"] - acc
        samples = round(abs(diff) * n)
        counted = f" ({samples} of {n} test samples)" if n else ""
        if diff == 0:
            lines.append(
                f"{_name(main)} and {_name(arm)} scored the same on the test split: {_pct(acc)}."
            )
        else:
            (won, hi), (lost, lo) = sorted(
                [(arm, b["accuracy"]), (main, acc)], key=lambda p: p[1], reverse=True
            )
            lines.append(
                f"{_name(won)} beat {_name(lost)}: {_pct(hi)} against {_pct(lo)} on the test "
                f"split, {100 * abs(diff):.2f} points{counted}."
            )
        if n and samples <= 1:
            lines.append(
                f"The difference between {_name(main)} and {_name(arm)} is within the test "
                "split's resolution: the test split cannot tell them apart."
            )
    if n:
        lines.append(
            f"Resolution: the test split has {n} samples, so one test sample is "
            f"100/{n} = {100 / n:.2f} points of accuracy."
        )
    return lines + [f"Warning: {w}" for w in r.get("warnings") or []]


def _inputs(r: dict[str, Any]) -> list[str]:
    t, d, spec = r["teacher"], r.get("dataset", {}), r["spec"]
    versions = ", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items())
    return [
        "## What went in",
        "",
        f"- Teacher: {t['format']}, sha256 `{t.get('fingerprint') or 'n/a'}`",
        f"- Dataset: {d.get('source', 'n/a')}, sha256 `{d.get('sha256') or 'n/a (builtin)'}`, "
        f"sizes {json.dumps(d.get('sizes'))}",
        f"- Seed: {spec['seed']}",
        f"- Library versions: {versions or 'n/a'}",
        "- Spec as run (defaults filled in):",
        "",
        "```json",
        json.dumps(spec, indent=2, sort_keys=True),
        "```",
    ]


def _latency_keys(rows: list[dict[str, Any]]) -> list[str]:
    # Whatever latency figures report.json holds (median, p90, per batch size): render them all.
    keys = {k for row in rows for k, v in row.items() if k.startswith("latency") and _is_num(v)}
    return sorted(keys)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _size_table(r: dict[str, Any]) -> list[str]:
    t, o, i = r["teacher"], r["onnx"], r.get("int8")
    rows = [("teacher", t, r["params"]["teacher"]), ("student.onnx", o, r["student"]["params"])]
    if i:
        rows.append(("student.int8.onnx" if i.get("kept") else "INT8 (not shipped)", i, None))
    keys = _latency_keys([row for _, row, _ in rows])
    # e.g. latency_ms_batch1 -> "latency batch1 (ms)"
    labels = [k.replace("_ms", "").replace("_", " ") + " (ms)" for k in keys]
    head = ["model", "file bytes", "parameters", *labels]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row, params in rows:
        cells = [name, _num(row.get("size_bytes")), _num(params)]
        cells += [f"{row[k]:.3f}" if _is_num(row.get(k)) else "n/a" for k in keys]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _int8(i: dict[str, Any] | None) -> list[str]:
    if not i:
        return []
    how = f" ({i['method']} quantization)" if i.get("method") else ""
    verdict = "kept as `student.int8.onnx`" if i["kept"] else f"not shipped: {i.get('reason')}"
    figures = (
        f"accuracy {_pct(i['accuracy'])}, {i['size_bytes']:,} bytes, "
        f"{i['latency_ms_batch1']:.3f} ms at batch 1; "
        if "accuracy" in i
        else ""
    )
    out = [f"- INT8{how}: {figures}{verdict}."]
    out += [
        f"  - candidate {c['method']}: test accuracy {_pct(c['accuracy'])}, agreement with "
        f"FP32 {_pct(c.get('agreement_with_fp32'))}, {c['size_bytes']:,} bytes; {c['verdict']}"
        for c in i.get("candidates") or []
    ]
    return out


def _ms(latency: dict[str, Any] | None, batch: int) -> str:
    one = (latency or {}).get(f"batch{batch}")
    if not one:
        return "n/a"
    runs = f" ({one['runs']} runs)" if one.get("runs") else ""
    return f"{one['median_ms']:.3f} / {one['p90_ms']:.3f}{runs}"


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}x"


def _measured_table(m: dict[str, Any]) -> list[str]:
    """report.json's `measured` rows: parameters, file size, latency and ratios to the teacher."""
    batches = m.get("batch_sizes") or [1]
    head = ["model", "file", "parameters", "file bytes"]
    head += [f"batch {b} median / p90 (ms)" for b in batches]
    head += [f"speedup vs teacher (batch {batches[0]})", "smaller than teacher", "note"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in m["rows"]:
        vs = row.get("vs_teacher") or {}
        speed = (vs.get("speedup") or {}).get(f"batch{batches[0]}")
        cells = [row["model"], f"`{row['file']}`" if row.get("file") else "-",
                 _num(row.get("params")), _num(row.get("size_bytes"))]  # fmt: skip
        cells += [_ms(row.get("latency"), b) for b in batches]
        cells += [_ratio(speed), _ratio(vs.get("size_ratio")), row.get("note") or ""]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        f"Measured with {m.get('engine')}, {m.get('threads')} thread(s): {m.get('statistic')}.",
    ]
    return out


def _contract(r: dict[str, Any]) -> list[str]:
    c = r.get("input_contract")
    if not c:
        return []
    inside = ", ".join(c.get("steps_in_graph") or []) or "none"
    return [
        "## Input contract: what `student.onnx` takes",
        "",
        f"- Input `{c['name']}`: {c['dtype']}, layout {c['layout']}, one sample of shape "
        f"{c['shape']}, values in {c['value_range']} ({c['value_range_source']}).",
        f"- Raw input (all preprocessing inside the graph): {'yes' if c['raw_input'] else 'no'}; "
        f"steps inside the graph: {inside}.",
        f"- Outside the graph, as for the teacher (dataset.normalize): `{json.dumps(c['normalize'])}`.",
        "- The same facts are in the ONNX metadata (`akd.input_contract`, `labels`).",
    ]


def _snippet(r: dict[str, Any]) -> list[str]:
    name = (r.get("input_contract") or {}).get("name", "input")
    return [
        "## Run it",
        "",
        f"`{SAMPLE}` holds one test sample exactly as `student.onnx` takes it:",
        "",
        "```python",
        "import json",
        "",
        "import numpy as np",
        "import onnxruntime as ort",
        "",
        'session = ort.InferenceSession("student.onnx")',
        f'x = np.load("{SAMPLE}")',
        f'logits = session.run(None, {{"{name}": x}})[0]',
        'labels = json.loads(session.get_modelmeta().custom_metadata_map["labels"])',
        'print("prediction:", labels[int(logits.argmax(1)[0])])',
        "```",
    ]


def render_markdown(r: dict[str, Any], *, with_sample: bool = False) -> str:
    """The model card as Markdown text (`with_sample`: sample.npy is there for the snippet)."""
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
        "## Verdict",
        "",
        *[f"- {line}" for line in verdict_lines(r)],
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
        f"![test accuracy against model size]({SIZE_ACCURACY})",
        "",
        "## Size and latency (onnxruntime, CPU)",
        "",
        *(_measured_table(r["measured"]) if r.get("measured") else _size_table(r)),
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
    lines += _int8(r.get("int8"))
    lines += ["", *_contract(r), "", *(_snippet(r) if with_sample else []), ""]
    lines += [*text_card(r), ""] if r.get("text") else []  # tokenizer, lengths, snippet
    lines += [
        "## Preprocessing (the teacher saw exactly this too)",
        "",
        f"`{json.dumps(r['preprocessing'])}`; input shape {r['dataset'].get('input_shape')}. "
        "The same facts are stored in the ONNX metadata (`preprocessing`, `input_shape`, `labels`).",
        "",
        *_inputs(r),
        "",
        "## Training history",
        "",
        f"![loss and Phi per epoch, the phase boundary marked]({LOSS_PHI})",
        f"![validation accuracy per epoch of every method]({VAL_ACCURACY})",
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
