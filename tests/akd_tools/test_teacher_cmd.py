"""`akd teacher`: trains the reference teacher with a progress bar, prints accuracy and path."""

from __future__ import annotations

from typing import Any

import onnx

from akd_tools import cli, teacher


class RecordingBar:
    """Stands in for the terminal bar; keeps what it was fed."""

    events: list[dict[str, Any]] = []

    def __init__(self, enabled: bool) -> None:
        RecordingBar.events = []

    def __call__(self, event: dict[str, Any]) -> None:
        RecordingBar.events.append(dict(event))

    def close(self) -> None:
        pass


def test_teacher_trains_with_progress_and_prints_its_accuracy_and_path(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(teacher, "ProgressBar", RecordingBar)
    out = tmp_path / "models" / "teacher.onnx"
    code = cli.main(["teacher", "--arch", "mlp", "--epochs", "2", "--out", str(out)])
    assert code == cli.EXIT_OK
    stdout = capsys.readouterr().out
    assert f"saved to {out}" in stdout
    accuracy = float(stdout.split("teacher test accuracy ")[1].split(";")[0])
    assert 0.5 < accuracy <= 1.0  # digits: an MLP is far above chance after 2 epochs
    assert [(e["epoch"], e["progress"]) for e in RecordingBar.events] == [(1, 0.5), (2, 1.0)]
    onnx.checker.check_model(onnx.load(str(out)))


def test_teacher_refuses_an_unknown_arch_without_a_traceback(tmp_path, capsys):
    code = cli.main(
        ["teacher", "--arch", "cnnn", "--epochs", "1", "--out", str(tmp_path / "t.onnx")]
    )
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "cnnn" in err and "Traceback" not in err
    assert not (tmp_path / "t.onnx").exists()
