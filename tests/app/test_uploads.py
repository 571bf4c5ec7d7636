"""POST /uploads: stored bytes, hashing, the size cap and archive checks."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from app_support import LOCAL_URL, assert_problem, make_settings, npz_bytes, onnx_bytes, upload
from fastapi.testclient import TestClient
from starlette.requests import Request

from akd_service.db.models import Upload
from akd_service.db.session import session_scope
from app.main import create_app
from app.uploads import UploadRejected, UploadTimeouts, receive_upload


def _stored_files(settings) -> list[Path]:
    return [p for p in settings.uploads.rglob("*") if p.is_file()]


def test_upload_stores_the_bytes_with_sha256_size_and_kind(client, settings):
    data = onnx_bytes()
    r = upload(client, "../../teacher model.onnx", data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data)
    assert body["kind"] == "onnx"
    # The name keeps its extension but loses any directory part.
    assert body["filename"] == "teacher_model.onnx"
    stored = settings.uploads / body["id"] / "teacher_model.onnx"
    assert stored.read_bytes() == data


def test_upload_one_byte_over_the_cap_is_413_and_leaves_nothing(tmp_path, queue):
    settings = make_settings(tmp_path, max_upload_bytes=1000)
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        assert upload(client, "ok.bin", b"a" * 1000).status_code == 201
        before = _stored_files(settings)
        r = upload(client, "big.bin", b"a" * 1001)
        body = assert_problem(r, 413)
        assert "1000 bytes" in body["detail"]
        assert _stored_files(settings) == before


def test_declared_length_far_over_the_cap_is_refused_before_reading(tmp_path, queue):
    settings = make_settings(tmp_path, max_upload_bytes=1000)
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:

        def body():  # the stream must not be consumed at all
            raise AssertionError("the body was read")
            yield b""

        r = client.post(
            "/uploads",
            content=body(),
            headers={
                "content-type": "multipart/form-data; boundary=xyz",
                "content-length": str(10**9),
            },
        )
        assert_problem(r, 413)


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_with_symlink() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("cats/evil.png")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    return buf.getvalue()


def test_unsafe_archives_are_refused_and_not_stored(client, settings):
    bomb = _zip({"cats/zeros.png": b"\0" * (20 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    cases = {
        "slip.zip": _zip({"../../evil.txt": b"x"}),
        "abs.zip": _zip({"/etc/evil.txt": b"x"}),
        "link.tar": _tar_with_symlink(),
        "bomb.zip": bomb,
        "truncated.zip": _zip({"cats/a.png": b"x" * 5000})[:-60],
        # A TorchScript archive is a zip too: torch.jit.load would inflate the bomb.
        "teacher.pt": _zip(
            {
                "model/data.pkl": b"\x80\x02}q\x00.",
                "model/code/__torch__.py": b"",
                "model/data/0": b"\0" * (20 * 1024 * 1024),
            },
            zipfile.ZIP_DEFLATED,
        ),
    }
    for name, data in cases.items():
        r = upload(client, name, data)
        body = assert_problem(r, 422, field="file")
        assert "archive" in body["detail"], (name, body)
    assert _stored_files(settings) == []


def test_a_safe_image_folder_archive_is_accepted(client):
    data = _zip({"cats/a.png": b"\x89PNG" + b"1" * 50, "dogs/b.png": b"\x89PNG" + b"2" * 50})
    r = upload(client, "images.zip", data)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "zip"


def test_upload_without_a_file_part_is_a_problem(client, settings):
    r = client.post("/uploads", data={"note": "no file here"}, files={"x": (None, b"v")})
    assert_problem(r, 422, field="file")
    r = client.post("/uploads", content=b"raw", headers={"content-type": "application/json"})
    assert_problem(r, 415)
    assert _stored_files(settings) == []


def test_npz_upload_is_sniffed(client):
    r = upload(client, "data.npz", npz_bytes())
    assert r.status_code == 201
    assert r.json()["kind"] == "npz"


def test_the_stream_is_not_read_past_the_cap(tmp_path):
    """receive_upload stops pulling body chunks as soon as the cap is passed."""
    pulled: list[int] = []
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\n'

    async def receive() -> dict:
        pulled.append(1)
        chunk = head if len(pulled) == 1 else b"z" * 65536
        return {"type": "http.request", "body": chunk, "more_body": len(pulled) < 1000}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/uploads",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
    }
    dest = tmp_path / "u1"
    with pytest.raises(UploadRejected) as err:
        asyncio.run(receive_upload(Request(scope, receive), dest, 100_000, UploadTimeouts(60, 60)))
    assert err.value.status == 413
    assert len(pulled) < 5  # 64 MB were on offer; about 100 kB were read
    assert not dest.exists()


def test_a_highly_compressible_npz_is_accepted_but_an_oversized_one_is_not(tmp_path, queue):
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((512, 1024), np.float32), y=np.zeros(512, np.int64))
    settings = make_settings(tmp_path, archive_max_total_bytes=3 * 1024 * 1024)
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as client:
        r = upload(client, "zeros.npz", buf.getvalue())
        assert r.status_code == 201, r.text
        buf = io.BytesIO()
        np.savez_compressed(buf, x=np.zeros((1024, 1024), np.float32))
        assert_problem(upload(client, "big.npz", buf.getvalue()), 422, field="file")


def test_relative_data_dir_uploads_resolve_alike_in_the_api_and_the_worker(
    tmp_path, monkeypatch, queue
):
    # AKD_DATA_DIR defaults to the relative ./akd-data: uvicorn and celery run from one folder.
    from worker.runner import upload_resolver

    monkeypatch.chdir(tmp_path)
    settings = make_settings(Path("."))
    assert not settings.uploads.is_absolute()
    with TestClient(
        create_app(settings, queue), base_url=LOCAL_URL, raise_server_exceptions=False
    ) as c:
        teacher = upload(c, "t.onnx", onnx_bytes()).json()["id"]
        data = upload(c, "d.npz", npz_bytes()).json()["id"]
        spec = {
            "teacher": {"source": f"upload:{teacher}", "format": "onnx"},
            "student": {"arch": "mlp"},
            "dataset": {"source": f"upload:{data}"},
            "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
        }
        r = c.post("/jobs", json=spec)
        assert r.status_code == 202, r.text
    with session_scope(settings) as s:
        row = s.get(Upload, teacher)
        assert row is not None
        assert row.path == f"{teacher}/t.onnx"  # relative to the uploads root, not the cwd
    resolved = upload_resolver(settings, "local")(f"upload:{teacher}")
    assert resolved.read_bytes() == onnx_bytes()
    assert resolved.resolve() == (tmp_path / "data" / "uploads" / teacher / "t.onnx").resolve()
