"""The `akd` CLI traps a new user met: downloads over folders, file: paths, late validation,
an unreadable job list, 0600 outputs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from akd_core.fileio import atomic_write_text
from akd_tools import cli
from akd_tools.client import AKDClient
from tests.akd_tools.test_client import JOB_ID, FakeServer


def _run(monkeypatch, server: FakeServer, *argv: str) -> int:
    monkeypatch.setattr(
        cli, "_client", lambda args: AKDClient("http://akd", transport=httpx.MockTransport(server))
    )
    return cli.main(list(argv))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("with_out", [True, False])
def test_download_one_artifact_creates_the_folder_and_writes_inside_it(
    monkeypatch, tmp_path, capsys, with_out
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fresh" / "folder"
    argv = ["download", JOB_ID, "report.md"] + (["--out", str(out)] if with_out else [])
    assert _run(monkeypatch, FakeServer(), *argv) == cli.EXIT_OK
    folder = out if with_out else tmp_path / "runs" / JOB_ID
    assert folder.is_dir()  # not a file holding the artifact's bytes
    assert (folder / "report.md").read_bytes() == b"bytes of report.md"
    assert _mode(folder / "report.md") == 0o644


def test_download_never_replaces_a_folder_with_an_artifact(monkeypatch, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "report.md").mkdir(parents=True)
    (out / "report.md" / "mine.txt").write_text("keep me")
    code = _run(monkeypatch, FakeServer(), "download", JOB_ID, "report.md", "--out", str(out))
    assert code != cli.EXIT_OK
    assert f"{out / 'report.md'} is a folder" in capsys.readouterr().err
    assert (out / "report.md" / "mine.txt").read_text() == "keep me"


def test_a_failed_download_leaves_no_empty_folder_behind(monkeypatch, tmp_path, capsys):
    out = tmp_path / "new" / "folder"
    code = _run(monkeypatch, FakeServer(), "download", "nosuchjob", "report.md", "--out", str(out))
    assert code == cli.EXIT_USAGE
    assert "no job at /jobs/nosuchjob/artifacts/report.md" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # neither the folder nor its new parent


def _spec_file(folder: Path, **changes: object) -> Path:
    spec = {"teacher": {"source": "file:teacher.onnx"}, "student": {"arch": "mlp"},
            "dataset": {"source": "file:data.npz"}} | changes  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder / "spec.json"


def test_submit_validates_the_whole_spec_before_uploading_anything(monkeypatch, tmp_path, capsys):
    folder = tmp_path / "project"
    spec = _spec_file(folder, anealing={"tau_max": 2})
    (folder / "teacher.onnx").write_bytes(b"onnx")
    (folder / "data.npz").write_bytes(b"npz!")
    server = FakeServer()
    assert _run(monkeypatch, server, "submit", str(spec)) == cli.EXIT_USAGE
    assert "did you mean 'annealing'?" in capsys.readouterr().err
    assert server.uploads == [] and server.submitted is None


def test_submit_names_the_absolute_path_of_a_missing_file_before_uploading(
    monkeypatch, tmp_path, capsys
):
    folder = tmp_path / "project"
    _spec_file(folder)
    (folder / "teacher.onnx").write_bytes(b"onnx")  # data.npz is missing
    monkeypatch.chdir(tmp_path)
    server = FakeServer()
    assert _run(monkeypatch, server, "submit", "project/spec.json") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"dataset.source: file {folder / 'data.npz'} does not exist" in err
    assert server.uploads == []


def test_distill_resolves_file_sources_relative_to_the_spec_like_submit(
    monkeypatch, tmp_path, capsys
):
    folder = tmp_path / "project"
    spec = _spec_file(folder, dataset={"source": "builtin:digits"})
    monkeypatch.chdir(tmp_path)  # teacher.onnx is neither here nor there
    assert cli.main(["distill", "project/spec.json", "--quiet", "--out", "o"]) == cli.EXIT_USAGE
    assert f"file {folder / 'teacher.onnx'} does not exist" in capsys.readouterr().err
    assert spec.exists()


def test_distill_names_a_missing_teacher_file_before_any_data_is_read(
    monkeypatch, tmp_path, capsys
):
    import akd_core.pipeline

    def run_job(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started although teacher.source does not exist")

    monkeypatch.setattr(akd_core.pipeline, "run_job", run_job)
    folder = tmp_path / "project"
    _spec_file(folder, dataset={"source": "file:data.npz"})  # neither file exists
    argv = ["distill", str(folder / "spec.json"), "--quiet", "--out", str(tmp_path / "o")]
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"teacher.source: file {folder / 'teacher.onnx'} does not exist" in err


def test_jobs_prints_a_table_with_state_accuracy_and_age(monkeypatch, capsys):
    now = datetime.now(UTC)
    items = [
        {"id": "a" * 32, "state": "succeeded", "progress": 1.0, "phase": "evaluating",
         "metrics": {"student_accuracy": 0.97316}, "created_at": (now - timedelta(hours=3)).isoformat()},
        {"id": "b" * 32, "state": "running", "progress": 0.42, "phase": "annealing",
         "metrics": None, "created_at": (now - timedelta(seconds=75)).isoformat()},
    ]  # fmt: skip

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": items, "next": None})

    assert _run(monkeypatch, server, "jobs") == cli.EXIT_OK  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATE", "PROGRESS", "ACCURACY", "AGE"]
    assert lines[1].split() == ["a" * 32, "succeeded", "100%", "0.9732", "3h"]
    assert lines[2].split() == ["b" * 32, "running", "42%", "annealing", "-", "1m"]


def test_outputs_written_atomically_are_readable_like_downloads(tmp_path):
    path = atomic_write_text(tmp_path / "report.md", "# card\n")
    assert _mode(path) == 0o644


@pytest.mark.parametrize("lines", [1, 200_000])  # held in the buffer until exit; past it
def test_output_cut_short_by_the_reader_ends_quietly(lines):
    # `akd status ID | head`: the pipe closes while the CLI still writes, or before it flushes.
    script = (
        "import sys\n"
        "from akd_tools import cli\n"
        "def loud(args):\n"
        f"    for _ in range({lines}):\n"
        "        print('x' * 99)\n"
        "    return 0\n"
        "cli.cmd_status = loud\n"
        "sys.exit(cli.main(['status', 'some-id']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the CLI has written anything
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == cli.EXIT_OK
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
