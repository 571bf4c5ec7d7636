"""`akd distill --threads N`: the run's torch uses N intra-op threads, and report.json says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from akd_core.cli import main


@pytest.mark.parametrize("bad", ["0", "-2", "1.5", "all"])
def test_a_bad_thread_count_is_a_usage_error_naming_the_flag(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["spec.json", "--threads", bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--threads" in err and f"expected a whole number >= 1, not {bad!r}" in err


@pytest.mark.slow
def test_the_thread_count_reaches_torch_and_the_report(digits_teacher, tmp_path):
    spec = {
        "teacher": {"source": f"file:{digits_teacher}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits", "max_train_samples": 100},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    # 3: more than this machine's 2 cores, so neither torch's default nor a cap gives it.
    proc = subprocess.run(
        [sys.executable, "-m", "akd_core.cli", "spec.json", "--out", "run", "--threads", "3",
         "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["runtime"]["torch_threads"] == 3
    assert report["runtime"]["torch_interop_threads"] >= 1
