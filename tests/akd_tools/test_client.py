"""The Python client and the `akd` command line against a scripted fake server."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from akd_tools import cli
from akd_tools.client import AKDClient, AKDClientError, parse_sse

JOB_ID = "ab" * 16


class FakeServer:
    """Answers like the AKD API for one job; records what it was sent."""

    def __init__(self, final_state: str = "succeeded") -> None:
        self.final_state = final_state
        self.uploads: list[str] = []
        self.submitted: dict[str, Any] | None = None
        self.artifacts: list[Any] = ["student.onnx", "report.json"]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "POST" and path == "/uploads":
            name = "teacher.onnx" if b"teacher.onnx" in request.content else "data.npz"
            self.uploads.append(name)
            return httpx.Response(201, json={"id": f"up{len(self.uploads)}", "size": 4})
        if method == "POST" and path == "/jobs":
            self.submitted = json.loads(request.content)
            if self.submitted["student"]["arch"] == "nope":
                return httpx.Response(422, json={"title": "Invalid job spec",
                                                 "detail": "student.arch: unknown 'nope'"})  # fmt: skip
            return httpx.Response(202, json={"id": JOB_ID, "state": "queued"},
                                  headers={"Location": f"/jobs/{JOB_ID}"})  # fmt: skip
        if path == f"/jobs/{JOB_ID}/events":
            body = (
                'id: 1\nevent: state\ndata: {"state":"running","attempt":1}\n\n'
                ": keep-alive\n\n"
                'id: 2\nevent: epoch\ndata: {"kind":"epoch","stage":"annealing","epoch":1,'
                '"progress":0.5}\n\n'
                f'event: end\ndata: {{"state":"{self.final_state}"}}\n\n'
            )
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        if path == f"/jobs/{JOB_ID}":
            reason = None if self.final_state == "succeeded" else "teacher at chance level"
            return httpx.Response(200, json={"id": JOB_ID, "state": self.final_state,
                                             "failure_reason": reason,
                                             "artifacts": self.artifacts})  # fmt: skip
        if path.startswith(f"/jobs/{JOB_ID}/artifacts/"):
            return httpx.Response(200, content=b"bytes of " + path.rsplit("/", 1)[-1].encode())
        return httpx.Response(404, json={"title": "Not found", "detail": f"no job at {path}"})


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "teacher.onnx").write_bytes(b"onnx")
    (tmp_path / "data.npz").write_bytes(b"npz!")
    spec = {"teacher": {"source": "file:teacher.onnx"}, "student": {"arch": "mlp"},
            "dataset": {"source": "file:data.npz"}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return tmp_path


def test_submit_uploads_local_files_and_pins_their_formats(files):
    server = FakeServer()
    with AKDClient("http://akd", transport=httpx.MockTransport(server)) as client:
        spec = json.loads((files / "spec.json").read_text())
        job = client.submit(spec, base_dir=files)
    assert job["id"] == JOB_ID
    assert server.uploads == ["teacher.onnx", "data.npz"]
    assert server.submitted is not None
    assert server.submitted["teacher"] == {"source": "upload:up1", "format": "onnx"}
    assert server.submitted["dataset"] == {"source": "upload:up2", "format": "npz"}
    assert spec["teacher"]["source"] == "file:teacher.onnx"  # the caller's dict is untouched


def test_submit_zips_folder_sources_and_uploads_text_split_files(monkeypatch, tmp_path):
    # The README's text spec: an hf model folder, train and test files beside the spec.
    model = tmp_path / "my-bert"
    (model / "sub").mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "sub/vocab.txt"):
        (model / name).write_text(name)
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / name).write_text('{"text": "a", "label": 0}\n')
    spec = {"teacher": {"source": "file:my-bert/", "format": "hf"},
            "student": {"arch": "shrink-teacher"},
            "dataset": {"source": "file:train.jsonl", "test_source": "file:test.jsonl"}}  # fmt: skip
    sent: dict[str, Any] = {}

    def upload(self: AKDClient, path: Path) -> dict[str, Any]:
        sent[path.name] = zipfile.ZipFile(path).namelist() if path.suffix == ".zip" else path
        return {"id": f"id-{path.name}"}

    monkeypatch.setattr(AKDClient, "upload", upload)
    with AKDClient("http://akd", transport=httpx.MockTransport(FakeServer())) as client:
        body = client.prepare_spec(spec, base_dir=tmp_path)
    assert body["teacher"] == {"source": "upload:id-my-bert.zip", "format": "hf"}
    assert body["dataset"] == {"source": "upload:id-train.jsonl", "format": "jsonl",
                               "test_source": "upload:id-test.jsonl"}  # fmt: skip
    assert sent["my-bert.zip"] == ["config.json", "model.safetensors", "sub/vocab.txt",
                                   "tokenizer.json"]  # fmt: skip


def test_a_folder_zips_to_the_same_bytes_every_time_so_uploads_deduplicate(tmp_path):
    from akd_tools.spec_files import zip_folder

    (tmp_path / "pics" / "cat").mkdir(parents=True)
    (tmp_path / "pics" / "cat" / "1.png").write_bytes(b"png")
    first = zip_folder(tmp_path / "pics", tmp_path / "a.zip").read_bytes()
    os.utime(tmp_path / "pics" / "cat" / "1.png", (1e9, 1e9))  # touched, not changed
    assert zip_folder(tmp_path / "pics", tmp_path / "b.zip").read_bytes() == first


def test_wait_streams_events_then_returns_the_final_status():
    seen: list[dict[str, Any]] = []
    with AKDClient("http://akd", transport=httpx.MockTransport(FakeServer())) as client:
        job = client.wait(JOB_ID, on_event=seen.append)
    assert job["state"] == "succeeded"
    assert [e["event"] for e in seen] == ["state", "epoch", "end"]
    assert seen[1]["id"] == 2 and seen[1]["epoch"] == 1


def test_problem_details_become_client_errors():
    client = AKDClient("http://akd", transport=httpx.MockTransport(FakeServer()))
    with client, pytest.raises(AKDClientError) as err:
        client.status("missing")
    assert err.value.status == 404
    assert err.value.detail == "Not found: no job at /jobs/missing"


@pytest.mark.parametrize("body", [b"<html>a proxy page</html>", b"[1, 2]"])
def test_a_server_that_is_not_akd_is_a_client_error_not_a_crash(body):
    def other(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    client = AKDClient("http://akd", transport=httpx.MockTransport(other))
    with client, pytest.raises(AKDClientError) as err:
        client.status(JOB_ID)
    assert (
        err.value.detail
        == f"Not an AKD server: expected a JSON object from http://akd/jobs/{JOB_ID}"
    )


def test_parse_sse_joins_multiline_data_and_skips_comments():
    lines = [": hello", "id: 7", "event: log", 'data: {"a":', "data: 1}", ""]
    assert list(parse_sse(iter(lines))) == [{"a": 1, "id": 7, "event": "log"}]


def _run_cli(monkeypatch, server: FakeServer, *argv: str) -> int:
    monkeypatch.setattr(
        cli, "_client", lambda args: AKDClient("http://akd", transport=httpx.MockTransport(server))
    )
    return cli.main(list(argv))


def test_cli_submit_wait_downloads_artifacts_and_exits_0(monkeypatch, files, tmp_path, capsys):
    out = tmp_path / "out"
    code = _run_cli(monkeypatch, FakeServer(), "submit", str(files / "spec.json"), "--wait",
                    "--quiet", "--out", str(out))  # fmt: skip
    assert code == cli.EXIT_OK
    assert (out / "student.onnx").read_bytes() == b"bytes of student.onnx"
    assert (out / "report.json").exists()


def test_cli_exit_codes_a_script_can_trust(monkeypatch, files, capsys):
    failed = _run_cli(monkeypatch, FakeServer("failed"), "submit", str(files / "spec.json"),
                      "--wait", "--quiet")  # fmt: skip
    assert failed == cli.EXIT_FAILED
    assert "teacher at chance level" in capsys.readouterr().err

    spec = json.loads((files / "spec.json").read_text())
    spec["student"]["arch"] = "nope"
    (files / "bad.json").write_text(json.dumps(spec))
    assert _run_cli(monkeypatch, FakeServer(), "submit", str(files / "bad.json")) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    # Refused here, before any upload, by the server's own architecture check.
    assert "student.arch: unknown architecture 'nope'; available:" in err
    assert "Traceback" not in err

    (files / "broken.json").write_text("{not json")
    assert _run_cli(monkeypatch, FakeServer(), "submit", str(files / "broken.json")) == 2


def test_cli_reports_an_unreachable_server_with_exit_3(capsys):
    assert cli.main(["status", JOB_ID, "--url", "http://127.0.0.1:9", "--key", ""]) == 3
    err = capsys.readouterr().err
    assert "unreachable" in err.lower()
    assert "start one here with `akd serve`" in err and "--url or AKD_URL" in err


@pytest.fixture
def server_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`akd keys` works on the server's own database: AKD_DATA_DIR under tmp_path."""
    from akd_service.config import Settings

    monkeypatch.setenv("AKD_DATA_DIR", str(tmp_path / "server"))
    return Settings()


def test_cli_keys_list_and_revoke(server_db, capsys):
    from akd_service.db.session import session_scope
    from akd_service.keys import verify_key

    assert cli.main(["keys", "list"]) == cli.EXIT_OK
    assert "no API keys" in capsys.readouterr().out
    assert cli.main(["keys", "create", "alice"]) == cli.EXIT_OK
    alice = capsys.readouterr().out.strip()
    assert cli.main(["keys", "create", "bob"]) == cli.EXIT_OK
    bob = capsys.readouterr().out.strip()

    assert cli.main(["keys", "list", "--json"]) == cli.EXIT_OK
    listed = capsys.readouterr().out
    rows = json.loads(listed)
    assert [(r["name"], r["revoked"]) for r in rows] == [("alice", False), ("bob", False)]
    assert set(rows[0]) == {"id", "name", "created", "revoked"}
    assert alice not in listed and bob not in listed  # never the key (nor its hash)
    alice_id = rows[0]["id"]

    assert cli.main(["keys", "revoke", alice_id]) == cli.EXIT_OK
    assert alice_id in capsys.readouterr().err
    assert cli.main(["keys", "list"]) == cli.EXIT_OK
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "NAME", "CREATED", "REVOKED"]
    assert table[1].split()[:2] == [alice_id, "alice"] and table[1].split()[-1] == "yes"
    assert table[2].split()[1] == "bob" and table[2].split()[-1] == "no"
    with session_scope(server_db) as session:
        assert verify_key(session, alice) is None
        assert verify_key(session, bob) is not None

    assert cli.main(["keys", "revoke", "nosuchkey"]) == cli.EXIT_USAGE
    assert "no API key 'nosuchkey'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad", ["../escape.txt", "ABSOLUTE", "sub/x.onnx", "sub\\x.onnx", "..", ".", "", 7]
)
def test_download_all_refuses_artifact_names_that_are_not_plain_file_names(tmp_path, bad):
    # The names come from the server: one that is a path must not write outside out_dir.
    server = FakeServer()
    out = tmp_path / "deep" / "out"
    server.artifacts = ["student.onnx", str(tmp_path / "abs.txt") if bad == "ABSOLUTE" else bad]
    client = AKDClient("http://akd", transport=httpx.MockTransport(server))
    with client, pytest.raises(AKDClientError, match="artifact name"):
        client.download_all(JOB_ID, out)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []  # nothing at all: the names are checked before any download
