"""`make demo`'s flow: says how long it takes, keeps its outputs, ends with the next commands."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from akd_core.spec import parse_spec
from akd_service.threads import threads_per_child
from akd_tools import demo
from akd_tools.demo_report import describe_task
from akd_tools.demo_task import SEEDS, job_spec


class FakeServer:
    """Stands in for the `akd serve` process."""

    def poll(self) -> int:
        return 0


def _fake_reports(_client: Any, out: Path) -> list[dict[str, Any]]:
    reports = []
    for seed, (ann, kd, st) in zip(
        SEEDS, [(0.9, 0.85, 0.8), (0.92, 0.86, 0.83), (0.91, 0.87, 0.82)], strict=True
    ):
        (out / f"seed{seed}").mkdir()
        (out / f"seed{seed}" / "report.md").write_text("model card")
        reports.append(
            {
                "teacher": {"accuracy": 0.98},
                "student": {"accuracy": ann},
                "baselines": {"kd": {"accuracy": kd}, "student": {"accuracy": st}},
                "dataset": {"sizes": {"test": 360}},
                "params": {"teacher": 23_000, "student": 1_442},
                "demo": {"seed": seed, "job": f"j{seed}", "onnx": ann},
            }
        )
    return reports


def test_demo_states_its_duration_keeps_outputs_and_prints_next_commands(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(demo, "start_server", lambda data_dir, port: FakeServer())
    monkeypatch.setattr(demo, "stop_server", lambda proc: None)
    monkeypatch.setattr(demo, "run_seeds", _fake_reports)
    out = tmp_path / "runs" / "demo"
    assert demo.main(["--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.splitlines()[0] == f"AKD demo: takes {demo.EXPECTED_DURATION}."
    assert "Annealing-KD       91.00 ± 1.00" in stdout
    assert "Annealing-KD is ahead of Hinton KD by +5.00 ± 1.00 points, better on 3 of 3" in stdout
    assert stdout.rstrip().endswith(
        f"akd submit {out}/spec.json --wait   # the same job through the API"
    )
    assert f"open {out}/report.md" in stdout and "akd teacher --out teacher.onnx" in stdout
    assert (out / "report.md").is_file() and (out / "seed2" / "report.md").is_file()
    # A file of the user's in the kept folder survives the next run, which refuses to start.
    (out / "seed0" / "notes.txt").write_text("mine")
    assert demo.main(["--out", str(out)]) == 2
    assert "seed0/notes.txt" in capsys.readouterr().err
    assert (out / "seed0" / "notes.txt").read_text() == "mine"


def test_the_demo_spec_is_a_valid_job_and_the_task_line_describes_it() -> None:
    spec = parse_spec(job_spec("file:teacher.onnx", 1))
    assert spec.seed == 1 and spec.method == "annealing"
    assert set(spec.compare) == {"student", "kd"}
    text = describe_task()
    assert f"tau_max {spec.annealing.tau_max}, E1 {spec.annealing.phase1_epochs}" in text
    assert spec.student.arch in text
    if spec.dataset.max_train_samples:
        assert f"only {spec.dataset.max_train_samples} labelled training images" in text


def test_runs_demo_is_ignored_by_git() -> None:
    root = Path(__file__).resolve().parents[2]
    probe = subprocess.run(
        ["git", "check-ignore", "-q", "runs/demo/report.md"], cwd=root, check=False
    )
    assert probe.returncode == 0  # the demo's outputs never show up in `git status`


def test_the_demo_server_trains_on_one_torch_thread(tmp_path: Path, monkeypatch) -> None:
    seen: dict[str, Any] = {}

    def fake_popen(cmd: list[str], **kwargs: Any) -> FakeServer:
        seen.update(cmd=cmd, **kwargs)
        return FakeServer()

    monkeypatch.setattr(subprocess, "Popen", fake_popen)  # demo calls subprocess.Popen
    monkeypatch.setattr(demo, "wait_ready", lambda url, alive, timeout_s: True)
    demo.start_server(tmp_path / "data", 8123)
    # Two threads made each tiny-student job 3x to 5x slower on a busy 2-core machine.
    # The product's own setting (each worker child's torch threads), not a bare OpenMP variable.
    assert seen["env"]["AKD_TORCH_THREADS"] == "1"
    assert threads_per_child(seen["env"]["AKD_TORCH_THREADS"], concurrency=1) == 1
    assert seen["cmd"][-4:] == ["--data-dir", str(tmp_path / "data"), "--port", "8123"]


def test_demo_refuses_a_folder_of_other_files_without_a_traceback(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert demo.main(["--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"{mine.absolute()} holds files the demo did not write" in err
    assert "Traceback" not in err
    assert (mine / "notes.txt").read_text() == "keep me"
