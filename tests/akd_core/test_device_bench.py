"""The GPU check's parts that run on a CPU host: its early exit, and the python it calls with
--device cpu and short options (the figures themselves need a GPU)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_without_a_gpu_stops_at_once_and_says_why(tmp_path):
    env = {**os.environ, "PATH": "/usr/bin:/bin", "AKD_GPU_CHECK_DIR": str(tmp_path / "o")}
    done = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3
    assert "no CUDA GPU visible" in done.stderr and "nothing was run" in done.stderr
    assert not (tmp_path / "o").exists()  # nothing measured, nothing written


def test_gpu_check_runs_every_part_the_issue_asks_for():
    script = (ROOT / "bench" / "gpu_check.sh").read_text()
    for part in ("bench/overhead.py --device cuda", "gpu_paths.py distill --device cuda",
                 "resume --device cuda --precisions bf16,fp16", "gpu_paths.py pinned",
                 "nvidia-smi dmon -s u", "nvidia-smi --query-gpu=name",
                 "gpu_paths.py kernels --device cuda"):  # fmt: skip
        assert part in script
    limits = [int(line.split()[2]) for line in script.splitlines() if line.startswith("step ")]
    assert sum(limits) <= 8 * 60 - 60  # the steps' limits leave a minute for setup


def test_overhead_benchmark_trains_the_student_in_the_jobs_amp_dtype(monkeypatch, capsys):
    overhead = _bench("overhead")
    seen: list[object] = []

    class Recorder:
        def __init__(self, *args: object, amp_dtype: object = None, **kw: object) -> None:
            seen.append(amp_dtype)

        def run(self, resume: bool) -> SimpleNamespace:
            return SimpleNamespace(history=[SimpleNamespace(seconds=1.0)])

    monkeypatch.setattr(overhead, "ArmTrainer", Recorder)
    # What a job on an Ampere card would choose (this CPU host cannot run it).
    monkeypatch.setattr(overhead, "amp_dtype_for", lambda dev, enabled: torch.bfloat16)
    overhead.main(["--device", "cpu", "--samples", "8", "--repeats", "1"])
    assert seen and set(seen) == {torch.bfloat16}
    assert "student precision bfloat16" in capsys.readouterr().out


def test_resume_check_is_exact_on_cpu(capsys):
    paths = _bench("gpu_paths")
    code = paths.main(["resume", "--device", "cpu", "--arch", "mlp", "--samples", "96",
                       "--batch-size", "32", "--precisions", "fp32"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "resume fp32 on cpu: EXACT; max |param diff| 0" in out
    assert not torch.are_deterministic_algorithms_enabled()  # switched back off


def test_resume_check_reports_a_run_that_does_not_resume_exactly(monkeypatch, capsys):
    from akd_core import arm_resume

    paths = _bench("gpu_paths")
    # A resume that forgets the RNG state shuffles the rest of the epoch differently.
    monkeypatch.setattr(arm_resume, "restore_rng", lambda *args: None)
    code = paths.main(["resume", "--device", "cpu", "--arch", "mlp", "--samples", "96",
                       "--batch-size", "32", "--precisions", "fp32"])  # fmt: skip
    assert code == 1 and "DIFFERS" in capsys.readouterr().out


def test_pinned_check_times_both_paths_on_cpu(capsys):
    paths = _bench("gpu_paths")
    paths.ARCH["name"] = "mlp"
    try:
        best = paths.pinned_check(torch.device("cpu"), 64, 32)
    finally:
        paths.ARCH["name"] = "resnet8"
    assert set(best) == {"resident", "pinned"} and all(s > 0 for s in best.values())
    assert "pinned / resident" in capsys.readouterr().out


@pytest.mark.slow
def test_distill_check_writes_fp32_and_int8_students_on_cpu(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/gpu_paths.py", "distill", "--device", "cpu", "--out",
         str(tmp_path), "--epochs", "1", "--teacher-epochs", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "akd distill on cpu" in done.stdout and "student.int8.onnx written True" in done.stdout


def test_kernels_check_times_eager_nchw_channels_last_and_compiled(monkeypatch, capsys):
    """On CPU with an identity torch.compile (the real one takes tens of seconds here)."""
    paths = _bench("gpu_paths")
    compiled: list[object] = []

    def fake_compile(model):
        compiled.append(model)
        return model

    monkeypatch.setattr(paths.torch, "compile", fake_compile)
    figures = paths.kernels_check(torch.device("cpu"), batch=8)
    assert list(figures) == ["eager NCHW", "eager channels_last", "compiled channels_last"]
    assert all(ms > 0 for ms in figures.values()) and len(compiled) == 1
    assert "compiled channels_last:" in capsys.readouterr().out
