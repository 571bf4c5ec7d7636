"""POST /uploads answers every broken or hostile archive with a 422, never a 500, and fast."""

from __future__ import annotations

import io
import tarfile
import time
import zipfile

import numpy as np
import pytest
from app_support import assert_problem, upload


def _tar(mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        data = np.random.default_rng(0).bytes(64 * 1024)
        info = tarfile.TarInfo("cats/a.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _corrupt_middle(data: bytes) -> bytes:
    # Keep the stream's magic and header; garble the compressed body after it.
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0x5A for b in data[mid : mid + 64]) + data[mid + 64 :]


def _zip_with_bad_utf8_name() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("\u00ff.txt", b"hello")  # non-ASCII: zipfile sets the UTF-8 flag
    # Swap the name's UTF-8 bytes (c3 bf) for bytes that are not UTF-8 (same length).
    return buf.getvalue().replace(b"\xc3\xbf.txt", b"\xff\xfe.txt")


@pytest.mark.parametrize(
    "name,data",
    [
        ("data.tar.gz", _corrupt_middle(_tar("w:gz"))),  # zlib.error escaped sniff
        ("data.tar.xz", _corrupt_middle(_tar("w:xz"))),  # lzma.LZMAError escaped sniff
        ("data.tar.bz2", _corrupt_middle(_tar("w:bz2"))),
        ("data.zip", _zip_with_bad_utf8_name()),  # UnicodeDecodeError escaped sniff
        ("data.tar.gz", _tar("w:gz")[:300]),  # truncated
    ],
)
def test_a_corrupt_archive_upload_is_a_422_naming_the_file(client, name, data):
    body = assert_problem(upload(client, name, data), 422, "file")
    assert "refused" in body["detail"]
    assert client.get("/healthz").status_code == 200


def _bz2_bomb(declared: int) -> bytes:
    """A small tar.bz2 whose one member declares `declared` bytes of zeros.

    bzip2 readers accept concatenated streams, so one compressed 16 MiB of zeros is
    repeated instead of compressing gigabytes in the test.
    """
    import bz2

    header = tarfile.TarInfo("zeros.bin")
    header.size = declared
    chunk = 16 * 1024 * 1024
    zeros = bz2.compress(bytes(chunk), 9)
    return bz2.compress(header.tobuf(format=tarfile.GNU_FORMAT)) + zeros * (declared // chunk)


def test_a_tar_bz2_declaring_3_gib_is_refused_within_a_second(client):
    bomb = _bz2_bomb(3 * 1024**3)
    assert len(bomb) < 20_000
    t0 = time.perf_counter()
    r = upload(client, "bomb.tar.bz2", bomb)
    elapsed = time.perf_counter() - t0
    body = assert_problem(r, 422, "file")
    assert "compression ratio" in body["detail"]
    assert elapsed < 2.5  # 10.7 s of sniffing before the bound (1 s target; a busy CI box)


def test_an_npz_of_zeros_is_refused_at_upload(client):
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((72 * 1024, 256), np.float32), y=np.zeros(72 * 1024))
    body = assert_problem(upload(client, "zeros.npz", buf.getvalue()), 422, "file")
    assert "past the cap of 100" in body["detail"]
