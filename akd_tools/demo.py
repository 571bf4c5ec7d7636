"""`make demo`: serve, distil over 3 seeds through the API, run the ONNX students, compare."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from akd_service.db.states import SUCCEEDED
from akd_tools.client import AKDClient
from akd_tools.demo_report import (
    DemoOutputError,
    describe_task,
    next_steps,
    prepare_out_dir,
    seal_out_dir,
    summary_lines,
    write_summary,
)
from akd_tools.demo_task import SEEDS, TEACHER_ARCH, TEACHER_EPOCHS, job_spec
from akd_tools.serve import free_port, wait_ready

DEFAULT_OUT = Path("runs/demo")
# Measured with `time make demo` (venv ready) on the 2-core development machine; see README.
EXPECTED_DURATION = "40 s to 2 minutes on 2 CPU cores, by how busy they are"


def start_server(data_dir: Path, port: int, timeout_s: float = 90.0) -> subprocess.Popen[bytes]:
    """Start `akd serve` on data_dir and port; return once /healthz answers."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "akd_tools.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        start_new_session=True,  # our Ctrl-C is forwarded explicitly, in stop_server
        # One torch thread in the worker (AKD_TORCH_THREADS; 'auto' would give its one child
        # both cores): the demo trains the next seed's teacher on the other core meanwhile, and
        # for students this small a second intra-op thread only adds synchronisation
        # (docs/benchmarks.md, the demo and torch-threads sections).
        env={**os.environ, "AKD_TORCH_THREADS": "1"},
    )
    if wait_ready(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, timeout_s):
        return proc
    stop_server(proc)
    raise RuntimeError(
        f"akd serve exited ({proc.returncode}) or did not answer in {timeout_s:.0f} s"
    )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the server and wait for its clean shutdown (kill it if that hangs)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_teacher(path: Path, seed: int) -> float:
    """Train the reference teacher on seed's training split (never its test split); save ONNX."""
    import torch

    from akd_core.reference_teacher import make_reference_teacher

    # One thread: the server's worker trains the previous seed's job on the other core.
    torch.set_num_threads(1)
    _, acc = make_reference_teacher(path, arch=TEACHER_ARCH, epochs=TEACHER_EPOCHS, seed=seed)
    return acc


def onnx_accuracy(model: Path, spec: dict[str, Any]) -> float:
    """Accuracy of an ONNX classifier on the job's test split, run by onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    from akd_core.data import load_dataset
    from akd_core.pipeline import resolve_source
    from akd_core.spec import parse_spec

    job = parse_spec(spec)
    # The same dataset spec and seed as the job: the same test split, the same preprocessing.
    path = resolve_source(job.dataset.source, None, "dataset.source")
    ds = load_dataset(job.dataset, path, job.seed)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: ds.x_test.astype(np.float32)})[0]
    return float((logits.argmax(1) == ds.y_test).mean())


def _show(seed: int, event: dict[str, Any]) -> None:
    """One line per job state and per finished phase of an arm (the demo fits one screen)."""
    if event.get("event") == "state":
        print(f"  seed {seed}: job {event.get('state')}", flush=True)
    elif event.get("kind") == "epoch" and event.get("epoch") == event.get("epochs"):
        print(
            f"  seed {seed}: {event.get('arm', ''):<9} {event.get('stage', ''):<10} "
            f"{event.get('epochs')} epochs, val acc {event.get('val_accuracy', 0):.3f}",
            flush=True,
        )


def run_seeds(client: AKDClient, out: Path) -> list[dict[str, Any]]:
    """Per seed: train its teacher, submit its job; then follow each job, download, score ONNX."""
    import json

    submitted = []
    for seed in SEEDS:
        teacher = out / "teachers" / f"teacher-seed{seed}.onnx"
        t0 = time.perf_counter()
        acc = make_teacher(teacher, seed)
        took = time.perf_counter() - t0
        print(f"seed {seed}: teacher {TEACHER_ARCH} test accuracy {acc:.4f} ({took:.0f} s)")
        spec = job_spec(f"file:{teacher.absolute()}", seed)
        job = client.submit(spec)
        print(f"seed {seed}: submitted job {job['id']}", flush=True)
        submitted.append((seed, spec, job["id"]))
    reports = []
    for seed, spec, job_id in submitted:
        job = client.wait(job_id, on_event=functools.partial(_show, seed), timeout_s=900)
        if job["state"] != SUCCEEDED:
            raise RuntimeError(f"job {job_id} (seed {seed}) {job['state']}: "
                               f"{job.get('failure_reason')}")  # fmt: skip
        folder = out / f"seed{seed}"
        client.download_all(job_id, folder)
        report = json.loads((folder / "report.json").read_text())
        onnx_acc = onnx_accuracy(folder / "student.onnx", spec)
        print(
            f"seed {seed}: student.onnx in onnxruntime {onnx_acc:.4f} on the test split "
            f"(report.json: {report['student']['accuracy']:.4f})",
            flush=True,
        )
        reports.append(report | {"demo": {"seed": seed, "job": job_id, "onnx": onnx_acc}})
    return reports


def main(argv: list[str] | None = None) -> int:
    """Run the whole demo; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m akd_tools.demo", description=__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="outputs (default runs/demo)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    print(f"AKD demo: takes {EXPECTED_DURATION}.")
    print(describe_task())
    try:
        out = prepare_out_dir(args.out)
    except DemoOutputError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="akd-demo-") as tmp:
            port = free_port()
            print(f"starting akd serve on http://127.0.0.1:{port} (its state in a temp folder)")
            server = start_server(Path(tmp) / "data", port)
            try:
                with AKDClient(f"http://127.0.0.1:{port}") as client:
                    reports = run_seeds(client, out)
            except RuntimeError as exc:
                print(f"demo failed: {exc}", file=sys.stderr)
                return 1
            finally:
                print("stopping the server")
                stop_server(server)
        write_summary(out, reports)
    finally:
        seal_out_dir(out)  # what the demo wrote: a rerun replaces these and spares the rest
    print()
    print("\n".join(summary_lines(reports)))
    print(f"\ndemo took {time.perf_counter() - started:.0f} s; outputs kept in {out}/")
    print("\n".join(next_steps(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
