"""What `make demo` says and keeps: the task, the comparison over seeds, runs/demo/report.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from akd_tools.demo_results import LABELS, collect, gain, mean_std, pm, table
from akd_tools.demo_task import SEEDS, TEACHER_ARCH, TEACHER_EPOCHS, job_spec

# A file only the demo writes: a folder holding it may be emptied by the next demo.
MARKER = ".akd-demo"
PLOTS = ("history.png", "val_accuracy.png", "accuracy_vs_size.png")


class DemoOutputError(Exception):
    """The output folder holds files the demo did not write; nothing was deleted."""


_MARKER_TEXT = "written by `make demo`; the next demo run replaces this folder\n"
_FILES_HEADER = "files:\n"


def prepare_out_dir(out: Path) -> Path:
    """Empty `out` for a new demo run if the demo made it (or it is empty); never touch other files."""
    if out.exists():
        if not out.is_dir():
            raise DemoOutputError(f"{out.absolute()} is a file; pass --out a folder")
        if any(out.iterdir()):
            foreign = _foreign_files(out)
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise DemoOutputError(
                    f"{out.absolute()} holds files the demo did not write ({shown}); move them "
                    "or pass --out an empty or new folder"
                )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text(_MARKER_TEXT)
    return out


def seal_out_dir(out: Path) -> None:
    """Record in the marker every file the demo wrote, so that a rerun spares any other."""
    (out / MARKER).write_text(_MARKER_TEXT + _FILES_HEADER + "".join(f"{f}\n" for f in _files(out)))


def _files(out: Path) -> list[str]:
    """Every file (or link) under `out` but the marker, as POSIX paths relative to it."""
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if (p.is_file() or p.is_symlink()) and p != out / MARKER
    )


def _foreign_files(out: Path) -> list[str]:
    """The files under a non-empty `out` that the demo did not write (all, without a marker)."""
    marker = out / MARKER
    if not marker.is_file():
        return _files(out) or ["(empty folders)"]
    text = marker.read_text()
    if _FILES_HEADER not in text:
        # A run that did not finish (or an older demo) listed nothing: its folder as a whole.
        return []
    written = set(text.split(_FILES_HEADER, 1)[1].splitlines())
    return [f for f in _files(out) if f not in written]


def next_steps(out: Path) -> list[str]:
    """The commands to try after the demo, pointing at its outputs in `out`."""
    return [
        "next, try:",
        f"  open {out}/report.md      # this comparison, with each seed's model card",
        "  .venv/bin/akd teacher --out teacher.onnx   # train a teacher of your own",
        f"  .venv/bin/akd distill {out}/spec.json --out runs/mine   # seed 0's job, no service",
        "  .venv/bin/akd serve        # the service; then, in another terminal:",
        f"  .venv/bin/akd submit {out}/spec.json --wait   # the same job through the API",
    ]


def describe_task() -> str:
    """One paragraph: the data, teacher, student, schedule and seeds the demo runs."""
    spec = job_spec("file:teacher.onnx", SEEDS[0])
    data, ann, student = spec["dataset"], spec["annealing"], spec["student"]
    labels = data.get("max_train_samples")
    few = f"only {labels} labelled training images" if labels else "the whole training split"
    options = f" {student['options']}" if student.get("options") else ""
    return (
        f"Task: {data['source']} with {few}; per seed a {TEACHER_ARCH} teacher is first trained "
        f"for {TEACHER_EPOCHS} epochs on the whole training split, then one job trains the "
        f"student {student['arch']}{options} three ways with the same "
        f"{ann['phase1_epochs'] + ann['phase2_epochs']}-epoch budget: Annealing-KD (tau_max "
        f"{ann['tau_max']}, E1 {ann['phase1_epochs']}, E2 {ann['phase2_epochs']}), Hinton KD "
        f"and student-only. Seeds {', '.join(map(str, SEEDS))}; test accuracy is reported as "
        "mean ± std over the seeds."
    )


def _verdict(values: dict[str, list[float]], over: str) -> str:
    """A plain sentence on Annealing-KD vs one baseline, paired per seed, from the figures."""
    diffs = gain(values, "annealing", over)
    mean, sd = mean_std(diffs)
    wins = sum(d > 0 for d in diffs)
    name = LABELS[over]
    if mean > 0:
        head = f"Annealing-KD is ahead of {name} by {100 * mean:+.2f} ± {100 * sd:.2f} points"
    else:
        head = f"Annealing-KD did NOT beat {name} in this run ({100 * mean:+.2f} ± {100 * sd:.2f} points)"
    return f"{head}, better on {wins} of {len(diffs)} seeds."


def summary_lines(reports: list[dict[str, Any]]) -> list[str]:
    """The comparison as printed at the end of the demo (and at the top of report.md)."""
    test = collect(reports)
    teacher = [float(r["teacher"]["accuracy"]) for r in reports]
    first = reports[0]
    n_test = first["dataset"]["sizes"]["test"]
    params = first.get("params", {})
    lines = [
        f"test accuracy over {len(reports)} seeds ({n_test} test images each, so one image is "
        f"{100 / n_test:.2f} points), mean ± std in %:",
        f"  teacher {TEACHER_ARCH:<10} {pm(teacher)}   ({params.get('teacher', '?'):,} parameters)"
        if isinstance(params.get("teacher"), int)
        else f"  teacher {TEACHER_ARCH:<10} {pm(teacher)}",
    ]
    for m, v in test.items():
        lines.append(
            f"  {LABELS[m]:<18} {pm(v)}   per seed: " + ", ".join(f"{100 * a:.2f}" for a in v)
        )
    if isinstance(params.get("student"), int):
        lines.append(f"  (student: {params['student']:,} parameters)")
    lines += [_verdict(test, over) for over in ("student", "kd") if over in test]
    return lines


def write_summary(out: Path, reports: list[dict[str, Any]]) -> Path:
    """Write out/report.md (comparison, seed folders, plots), summary.json and spec.json."""
    test = collect(reports)
    seeds = [r["demo"]["seed"] for r in reports]
    md = ["# AKD demo: Annealing-KD vs Hinton KD vs student-only", "", describe_task(), ""]
    md += ["```", *summary_lines(reports), "```", "", "Test accuracy:", "", *table(test), ""]
    md += ["Each seed's job (the service's artifacts: model card, report.json, student.onnx):", ""]
    for r in reports:
        s = r["demo"]["seed"]
        md.append(
            f"- seed {s}: [seed{s}/report.md](seed{s}/report.md), job `{r['demo']['job']}`, "
            f"student.onnx in onnxruntime {100 * r['demo']['onnx']:.2f}% on the test split"
        )
    md += ["", f"Seed {seeds[0]}'s plots:", ""]
    md += [f"![{p}](seed{seeds[0]}/{p})" for p in PLOTS if (out / f"seed{seeds[0]}" / p).is_file()]
    md += ["", "Rerun: `make demo`; how this task was chosen: `bench/demo_select.py`."]
    (out / "report.md").write_text("\n".join(md) + "\n")
    summary = {"seeds": seeds, "test_accuracy": test,
               "teacher_accuracy": [r["teacher"]["accuracy"] for r in reports]}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    teacher = (out / "teachers" / f"teacher-seed{seeds[0]}.onnx").absolute()
    spec = job_spec(f"file:{teacher}", seeds[0])
    (out / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    return out / "report.md"
