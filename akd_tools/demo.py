"""`make demo`: serve, distil a teacher it trains, run the ONNX student, print the accuracies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from akd_service.db.states import SUCCEEDED
from akd_tools.client import AKDClient
from akd_tools.serve import free_port, wait_ready

SEED = 0
DEMO_SPEC: dict[str, Any] = {
    "student": {"arch": "cnn-tiny"},
    "dataset": {"source": "builtin:digits"},
    "method": "annealing",
    "annealing": {"tau_max": 5, "phase1_epochs": 30, "phase2_epochs": 15},
    "optimizer": {"batch_size": 64},
    "compare": ["student", "kd"],
    "seed": SEED,
}


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


def make_teacher(path: Path) -> float:
    """Train a small CNN teacher on builtin:digits and export it to one ONNX file."""
    import torch

    from akd_core.reference_teacher import make_reference_teacher

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    _, acc = make_reference_teacher(path, arch="cnn-small", epochs=10, seed=SEED)
    return acc


def onnx_accuracy(model: Path) -> float:
    """Accuracy of an ONNX classifier on the digits test split, run by onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    from akd_core.data import load_dataset
    from akd_core.spec import DatasetSpec

    # The same spec and seed as the job: the same test split and the same preprocessing.
    ds = load_dataset(DatasetSpec(source="builtin:digits"), None, SEED)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: ds.x_test.astype(np.float32)})[0]
    return float((logits.argmax(1) == ds.y_test).mean())


def _show(event: dict[str, Any]) -> None:
    stage = event.get("stage")
    if event.get("event") == "state":
        attempt = f" (attempt {event['attempt']})" if event.get("attempt") else ""
        print(f"job {event.get('state')}{attempt}", flush=True)
    elif event.get("kind") == "epoch":
        if event["epoch"] % 5 and event["epoch"] != event.get("epochs"):
            return  # one line per five epochs keeps the demo on one screen
        arm = event.get("arm", "")
        line = f"  {arm:<10} {stage:<12} epoch {event.get('epoch')}/{event.get('epochs')}"
        if event.get("T") is not None:
            line += f"  T={event['T']}"
        line += f"  val acc {event.get('val_accuracy', 0):.3f}"
        print(f"[{event.get('progress', 0):4.0%}] {line}", flush=True)
    elif stage and event.get("kind") != "log":
        print(f"[{event.get('progress', 0):4.0%}] {stage}", flush=True)


def main() -> int:
    """Run the whole demo; returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="akd-demo-") as tmp:
        work = Path(tmp)
        port = free_port()
        print(f"starting akd serve on http://127.0.0.1:{port} (data in {work / 'data'})")
        server = start_server(work / "data", port)
        try:
            print("training a teacher (cnn-small) on builtin:digits ...", flush=True)
            teacher_acc = make_teacher(work / "teacher.onnx")
            print(f"teacher test accuracy {teacher_acc:.4f}")
            spec = DEMO_SPEC | {"teacher": {"source": f"file:{work / 'teacher.onnx'}"}}
            with AKDClient(f"http://127.0.0.1:{port}") as client:
                job = client.submit(spec)
                print(f"submitted job {job['id']}; following its events")
                job = client.wait(job["id"], on_event=_show, timeout_s=900)
                if job["state"] != SUCCEEDED:
                    print(f"job {job['state']}: {job.get('failure_reason')}", file=sys.stderr)
                    return 1
                out = work / "out"
                for name in ("student.onnx", "report.json"):
                    client.download(job["id"], name, out / name)
            import json

            report = json.loads((out / "report.json").read_text())
            student_acc = onnx_accuracy(out / "student.onnx")
            print("\ntest accuracy on builtin:digits")
            print(f"  teacher (cnn-small)               {report['teacher']['accuracy']:.4f}")
            print(f"  student.onnx in onnxruntime        {student_acc:.4f}  (annealing-KD)")
            for arm, b in report.get("baselines", {}).items():
                print(f"  baseline {arm:<8} (same budget)    {b['accuracy']:.4f}")
            params = report.get("params", {})
            print(f"  parameters: teacher {params.get('teacher')}, student {params.get('student')}")
            return 0
        finally:
            print("stopping the server")
            stop_server(server)


if __name__ == "__main__":
    sys.exit(main())
