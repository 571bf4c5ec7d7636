"""Cost of everything after training: export, parity, latency, INT8, report and plots.

For an MLP and a ResNet-8 student on builtin:digits (untrained: the cost does not depend on
the weights), `akd_core.report.write_outputs` runs with export.int8 on, stage by stage:

  new   the TorchScript-based exporter first, kept when its graph matches PyTorch on a
        64-sample probe (the shipped path)
  old   the torch.export-based exporter first (the path before), everything else the same

Runs alternate new, old, new, old in one process, so the first run of each pays its
exporter's first-time cost in the process (printed as run 1) and the second shows the
steady cost; ratios are new / old of the same run number. With --job, whole 12-epoch
digits jobs (ONNX reference teacher, export.int8 on) run through run_job: a warm-up job that
starts the teacher process cold, then MLP new, old, new and ResNet-8 new twice. The time
outside the training epochs is printed per job and per stage (pre-flight, the teacher
process, loading, teacher logits, the teacher's latency, export, parity, latency, INT8,
plots, the rest of the report).

    .venv/bin/python bench/export_cost.py [--job | --job-only]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import akd_core.report as report_module
from akd_core.data import load_dataset
from akd_core.export import export_checked
from akd_core.models import build_model
from akd_core.models.input_layer import with_input_layer
from akd_core.report import ArmSummary, RunFacts, write_outputs
from akd_core.spec import parse_spec

# The stages of write_outputs, by the name report.py calls them under.
STAGES = ("export_checked", "onnx_parity", "measure_file", "select_int8", "write_model_card")
HISTORY = [{"phase": 1, "epoch": 1, "T": 1, "phi": 1.0, "train_loss": 1.0, "val_accuracy": 0.5,
            "lr": 0.0, "seconds": 0.1}]  # fmt: skip


def _timed(times: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding the seconds of each call to times[name]."""

    def run(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name] += time.perf_counter() - t0

    return run


@contextmanager
def staged(times: dict[str, float], old: bool) -> Iterator[None]:
    """Time each stage of write_outputs into `times`; `old`: the torch.export exporter first."""
    saved = {name: getattr(report_module, name) for name in STAGES}

    for name, fn in saved.items():
        if name == "export_checked" and old:
            fn = functools.partial(export_checked, exporters=("dynamo", "torchscript"))
        setattr(report_module, name, _timed(times, name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(report_module, name, fn)


def output_stage(arch: str, old: bool) -> dict[str, float]:
    """Seconds per stage (and in all) of write_outputs for an `arch` student on digits."""
    spec = parse_spec({"teacher": {"source": "upload:0123abcd", "format": "onnx"},
                       "student": {"arch": arch}, "dataset": {"source": "builtin:digits"},
                       "export": {"int8": True}})  # fmt: skip
    ds = load_dataset(spec.dataset, None, spec.seed)
    torch.manual_seed(0)
    student = with_input_layer(build_model(arch, ds.input_shape, ds.num_classes), ds.x_train)
    facts = RunFacts(spec=spec, dataset=ds, device="cpu", amp=None, cache_seconds=0.0,
                     cache_hit=True, teacher={"format": "onnx", "fingerprint": "ab" * 32,
                                              "params": 100_000, "size_bytes": 400_000},
                     teacher_val_accuracy=0.99, teacher_test_accuracy=0.99)  # fmt: skip
    arm = ArmSummary(0.5, 0.5, 1, 1, 0.1, HISTORY)
    times: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as tmp, staged(times, old):
        t0 = time.perf_counter()
        write_outputs(Path(tmp), facts, student, {"annealing": arm})
        times["total"] = time.perf_counter() - t0
    times["other"] = times["total"] - sum(times[s] for s in STAGES)
    return dict(times)


# The stages of a whole job outside write_outputs: (module, attribute run_job calls it by).
JOB_STAGES = (
    ("akd_core.preflight", "before_data"),  # spec, student export check, memory estimate
    ("akd_core.pipeline", "load_teacher"),  # the sandboxed teacher process
    ("akd_core.pipeline", "check_teacher"),
    ("akd_core.pipeline", "load_dataset"),
    ("akd_core.preflight", "after_data"),
    ("akd_core.pipeline", "_teacher_logits"),
    ("akd_core.pipeline", "teacher_facts"),  # the teacher's latency, timed in its process
    ("akd_core.pipeline", "train_arms"),  # the epochs, and each arm's test accuracy
    ("akd_core.report_md", "write_plots"),  # inside write_model_card
)


@contextmanager
def job_staged(times: dict[str, float]) -> Iterator[None]:
    """Time each of JOB_STAGES into `times` (summed over calls)."""
    import importlib

    saved = [(importlib.import_module(m), name) for m, name in JOB_STAGES]
    originals = [getattr(mod, name) for mod, name in saved]

    for (mod, name), fn in zip(saved, originals, strict=True):
        setattr(mod, name, _timed(times, name, fn))
    try:
        yield
    finally:
        for (mod, name), fn in zip(saved, originals, strict=True):
            setattr(mod, name, fn)


def job_outside_training(
    old: bool, teacher: Path, arch: str = "mlp"
) -> tuple[float, float, dict[str, float], dict[str, Any]]:
    """Seconds outside the training epochs, of training; seconds per stage; and report.json."""
    from akd_core.pipeline import run_job

    spec = parse_spec({"teacher": {"source": f"file:{teacher}", "format": "onnx"},
                       "student": {"arch": arch}, "dataset": {"source": "builtin:digits"},
                       "annealing": {"tau_max": 4, "phase1_epochs": 8, "phase2_epochs": 4},
                       "export": {"int8": True}})  # fmt: skip
    times: dict[str, float] = defaultdict(float)
    out = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        with staged(times, old), job_staged(times):
            report = run_job(spec, out, device="cpu")
        total = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    train = sum(report["timings"]["train_s"].values())
    times["train_arms"] -= train  # what is left: building students, each arm's test accuracy
    times["write_model_card"] -= times["write_plots"]
    times["rest"] = total - train - sum(times.values())
    return total - train, train, dict(times), report


def print_job_stages(runs: list[tuple[str, float, float, dict[str, float]]]) -> None:
    """One row per job: seconds outside training, then per stage."""
    keys = [name for _, name in JOB_STAGES if name != "train_arms"]
    keys[keys.index("write_plots") : keys.index("write_plots")] = list(STAGES)
    keys += ["train_arms", "rest"]
    print("\nseconds per stage outside the training epochs (train_arms: its non-epoch part; "
          "rest: run_job's own code, report.json)")  # fmt: skip
    print("| job | outside training | training | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for name, outside, train, t in runs:
        cells = " | ".join(f"{t.get(k, 0.0):.3f}" for k in keys)
        print(f"| {name} | {outside:.2f} | {train:.2f} | {cells} |")


def print_latency_table(report: dict[str, Any]) -> None:
    """The job's measured table (report.json `measured`): teacher, student and INT8."""
    rows = report["measured"]["rows"]
    t = rows[0]["latency"]
    print("\n| model | params | file bytes | batch 1 median / p90 (ms) | batch 32 median / p90 (ms)"
          " | speedup vs teacher (b1, b32) |\n|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        lat = r["latency"]
        if lat is None:
            print(f"| {r['model']} | {r['params']} | {r['size_bytes']} | {r['note']} | | |")
            continue
        b1, b32 = lat["batch1"], lat["batch32"]
        speed = ((t["batch1"]["median_ms"] / b1["median_ms"], t["batch32"]["median_ms"] / b32["median_ms"])
                 if t else (float("nan"), float("nan")))  # fmt: skip
        print(f"| {r['model']} | {r['params']:,} | {r['size_bytes']:,} | {b1['median_ms']:.4f} / "
              f"{b1['p90_ms']:.4f} | {b32['median_ms']:.4f} / {b32['p90_ms']:.4f} | "
              f"{speed[0]:.1f}x, {speed[1]:.1f}x |")  # fmt: skip


def main() -> None:
    """Print the stage table for both students, and optionally the whole-job figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", action="store_true", help="also time whole 12-epoch jobs")
    parser.add_argument("--job-only", action="store_true", help="only the whole jobs")
    parser.add_argument("--arch", choices=("mlp", "resnet8"), default=None,
                        help="whole jobs of this student only: a warm-up, then three")  # fmt: skip
    args = parser.parse_args()
    args.job = args.job or args.job_only
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 torch thread; seconds per stage of write_outputs")
    header = ["run", *STAGES, "other", "total"]
    for arch in () if args.job_only else ("mlp", "resnet8"):
        runs = [(i, old, output_stage(arch, old)) for i in (1, 2) for old in (False, True)]
        print(f"\n{arch}:\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for i, old, t in runs:
            cells = [f"{t[k]:.3f}" for k in header[1:]]
            print(f"| {i} {'old' if old else 'new'} | " + " | ".join(cells) + " |")
        for i in (1, 2):
            new, old_t = (t for j, _, t in runs if j == i)
            ratios = ", ".join(f"{k} {new[k] / old_t[k]:.3f}" for k in ("export_checked", "total"))
            print(f"run {i} new/old: {ratios}")
    if args.job:
        from akd_core.reference_teacher import make_reference_teacher

        with tempfile.TemporaryDirectory() as tmp:
            teacher, _ = make_reference_teacher(Path(tmp) / "t.onnx", epochs=5)
            # The first job of a process also starts the teacher process cold: not counted.
            jobs = [("warm-up", False, "mlp"), ("mlp new", False, "mlp"), ("mlp old", True, "mlp"),
                    ("mlp new", False, "mlp"), ("resnet8 new", False, "resnet8"),
                    ("resnet8 new", False, "resnet8")]  # fmt: skip
            if args.arch is not None:
                jobs = [("warm-up", False, args.arch)] + [
                    (f"{args.arch} new", False, args.arch)
                ] * 3
            job_runs, reports = [], {}
            for name, old, arch in jobs:
                outside, train, stages, report = job_outside_training(old, teacher, arch)
                job_runs.append((name, outside, train, stages))
                reports[arch] = report
                print(f"12-epoch digits job ({name}): outside training {outside:.2f} s, "
                      f"training {train:.2f} s", flush=True)  # fmt: skip
            print_job_stages(job_runs)
            print_latency_table(reports[args.arch or "mlp"])


if __name__ == "__main__":
    main()
