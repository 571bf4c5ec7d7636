"""Every `akd` subcommand, run as a user runs it, against one real `akd serve` with keys on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from akd_tools.client import AKDClient
from akd_tools.serve import free_port
from tests.e2e.conftest import ENDLESS_SPEC, QUICK_SPEC
from tests.e2e.test_serve_e2e import Served, _env
from tests.report_contract import assert_report_follows_contract

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


class Akd:
    """Runs `akd ...` in a subprocess, as a shell user would, against one server."""

    def __init__(self, url: str, data: Path, cwd: Path) -> None:
        self.cwd = cwd
        # AKD_DATA_DIR: `akd keys` runs on the server machine and edits the server's database.
        self.env = _env() | {"AKD_URL": url, "AKD_DATA_DIR": str(data)}

    def __call__(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "akd_tools.cli", *args] + (["--key", key] if key else [])
        out = subprocess.run(cmd, env=self.env, cwd=self.cwd, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        assert "Traceback" not in out.stderr, out.stderr
        return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    """One `akd serve` that requires API keys; stopped (or killed) at the end."""
    s = Served(tmp_path / "data", free_port(), tmp_path / "serve.log", {"AKD_REQUIRE_KEYS": "true"})
    try:
        yield s
    finally:
        s.kill()


def _spec_file(path: Path, spec: dict[str, Any], teacher: Path) -> Path:
    path.write_text(json.dumps(spec | {"teacher": {"source": f"file:{teacher}"}}))
    return path


def test_every_akd_subcommand_against_a_real_server(server, digits_teacher, tmp_path):
    akd = Akd(server.url, server.data, tmp_path)

    # keys create: the key is printed once, on stdout alone (a script can capture it).
    created = akd("keys", "create", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key and "\n" not in key and "alice" in created.stderr
    listed = akd("keys", "list", "--json")
    assert listed.returncode == 0
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["revoked"]) == ("alice", False)
    assert key not in listed.stdout  # never shown again

    # A request without the key is refused with a sentence, exit code 2.
    denied = akd("jobs")
    assert denied.returncode == 2 and "API key" in denied.stderr

    # submit --wait: uploads the local teacher, follows the job, downloads the outputs.
    quick = QUICK_SPEC | {
        "compare": ["student", "kd"],
        "export": {"int8": True, "int8_max_accuracy_drop": 1.0},
    }
    spec = _spec_file(tmp_path / "quick.json", quick, digits_teacher)
    run = akd("submit", str(spec), "--wait", "--quiet", "--out", "run", key=key)
    assert run.returncode == 0, run.stderr + server.log.read_text()[-3000:]
    job_id = JOB_ID.search(run.stdout).group(0)  # type: ignore[union-attr]
    assert f"job {job_id} succeeded" in run.stdout
    # The summary `akd distill` prints, from the downloaded report: results, verdict, resolution.
    assert "\nstudent   0." in run.stdout and "(same budget, baseline)" in run.stdout
    assert "Resolution: the test split has" in run.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert_report_follows_contract(report)
    _check_report_values(report)
    assert (tmp_path / "run" / "student.onnx").stat().st_size > 1000
    assert (tmp_path / "run" / "student.int8.onnx").exists()

    # status: the job's document as JSON.
    status = akd("status", job_id, key=key)
    assert status.returncode == 0
    doc = json.loads(status.stdout)
    assert (doc["id"], doc["state"]) == (job_id, "succeeded")
    assert {"student.onnx", "report.json", "report.md"} <= set(doc["artifacts"])

    # download: all artifacts, then one by name.
    every = akd("download", job_id, "--out", "all", key=key)
    assert every.returncode == 0, every.stderr
    assert {Path(p).name for p in every.stdout.split()} == set(doc["artifacts"])
    assert json.loads((tmp_path / "all" / "report.json").read_text()) == report
    one = akd("download", job_id, "report.md", "--out", "one", key=key)
    assert one.returncode == 0 and sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "report.md"
    ]
    missing = akd("download", job_id, "nope.onnx", "--out", "one", key=key)
    assert missing.returncode == 2 and "nope.onnx" in missing.stderr

    # cancel: a long job stops; a finished one cannot be cancelled (a clear error, exit 2).
    long_spec = _spec_file(tmp_path / "long.json", ENDLESS_SPEC, digits_teacher)
    submitted = akd("submit", str(long_spec), key=key)
    assert submitted.returncode == 0, submitted.stderr
    long_id = submitted.stdout.split()[-1]
    assert JOB_ID.fullmatch(long_id)
    cancelled = akd("cancel", long_id, key=key)
    assert cancelled.returncode == 0, cancelled.stderr
    assert re.fullmatch(rf"job {long_id}: (cancelled|cancelling)", cancelled.stdout.strip())
    with AKDClient(server.url, api_key=key) as client:
        assert client.wait(long_id, timeout_s=120)["state"] == "cancelled"
    again = akd("cancel", job_id, key=key)
    assert again.returncode == 2 and "already ended (succeeded)" in again.stderr

    # jobs: a header, then both jobs, newest first, with their states and the result.
    jobs = akd("jobs", key=key)
    assert jobs.returncode == 0
    header, *rows = [line.split() for line in jobs.stdout.splitlines()]
    assert header == ["ID", "STATE", "PROGRESS", "ACCURACY", "AGE"]
    assert [(r[0], r[1]) for r in rows] == [(long_id, "cancelled"), (job_id, "succeeded")]
    assert float(rows[1][3]) > 0.5  # the succeeded job's student accuracy

    # keys revoke: the key stops working at once.
    revoked = akd("keys", "revoke", row["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(akd("keys", "list", "--json").stdout)[0]["revoked"] is True
    refused = akd("status", job_id, key=key)
    assert refused.returncode == 2 and "revoked" in refused.stderr
    assert server.stop() == 0


def _check_report_values(report: dict[str, Any]) -> None:
    """The values a user reads in report.json for QUICK_SPEC (tau_max 2, 2 + 1 epochs)."""
    history = report["history"]
    assert [(h["phase"], h["epoch"]) for h in history] == [(1, 1), (1, 2), (2, 1)]
    assert [h["T"] for h in history] == [2, 1, None]
    assert [h["phi"] for h in history] == [0.5, 1.0, None]  # Phi(T) = 1 - (T - 1) / tau_max
    assert set(report["baselines"]) == {"student", "kd"}
    assert report["params"]["student"] == report["student"]["params"]
    assert report["params"]["teacher"] > report["params"]["student"]
    assert report["teacher"]["accuracy"] > 0.9
    assert report["onnx"]["argmax_agreement"] >= 0.99
    assert report["onnx"]["parity_max_abs_diff"] < 1e-3
    assert report["student"]["accuracy"] == pytest.approx(report["onnx"]["accuracy"], abs=0.01)
