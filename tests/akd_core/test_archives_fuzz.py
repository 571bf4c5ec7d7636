"""A little fuzzing: truncated and bit-flipped archives of every kind raise only AKDError."""

from __future__ import annotations

import contextlib
import io
import pickle
import random
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from akd_core.archives import check_archive, read_members
from akd_core.data import load_dataset
from akd_core.errors import AKDError
from akd_core.formats import infer_dataset_format, sniff
from akd_core.spec import DatasetSpec

_RNG = np.random.default_rng(0)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cats/a.png", _RNG.bytes(3000))
        zf.writestr("dogs/b.png", bytes(3000))
    return buf.getvalue()


def _tar(mode: str, members: dict[str, bytes] | None = None) -> Callable[[], bytes]:
    def build() -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tf:
            for name, data in (members or {"cats/a.bin": _RNG.bytes(3000)}).items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    return build


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=_RNG.normal(size=(50, 4)), y=np.arange(50) % 2)
    return buf.getvalue()


def _torchscript() -> bytes:
    # The layout torch.jit.save writes: a zip with data.pkl, constants.pkl and code/.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model/data.pkl", pickle.dumps({"w": [1.0]}, protocol=2))
        zf.writestr("model/constants.pkl", pickle.dumps((), protocol=2))
        zf.writestr("model/code/__torch__.py", "def forward(self, x):\n    return x\n")
        zf.writestr("model/version", "3\n")
    return buf.getvalue()


def _cifar() -> bytes:
    batch = pickle.dumps({b"data": bytes(3072 * 2), b"labels": [0, 1]}, protocol=2)
    meta = pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2)
    members = {
        "cifar-10-batches-py/data_batch_1": batch,
        "cifar-10-batches-py/test_batch": batch,
        "cifar-10-batches-py/batches.meta": meta,
    }
    return _tar("w:gz", members)()


KINDS: dict[str, tuple[Callable[[], bytes], str]] = {
    "zip": (_zip, "zip"),
    "tar": (_tar("w"), "tar"),
    "tar.gz": (_tar("w:gz"), "tar"),
    "tar.bz2": (_tar("w:bz2"), "tar"),
    "tar.xz": (_tar("w:xz"), "tar"),
    "npz": (_npz, "npz"),
    "torchscript": (_torchscript, "torchscript"),
    "cifar": (_cifar, "cifar"),
}


def _mutants(data: bytes, rng: random.Random) -> list[bytes]:
    """Truncations at spread-out lengths and copies with a few bytes flipped."""
    cuts = sorted({1, 2, 10, 100, 512, len(data) // 3, len(data) // 2, len(data) - 1})
    out = [data[:n] for n in cuts if n < len(data)]
    for _ in range(40):
        mutant = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(mutant))
            mutant[at] ^= 1 << rng.randrange(8)
        out.append(bytes(mutant))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_broken_archives_raise_only_akd_errors(kind: str, tmp_path: Path) -> None:
    build, sniffed = KINDS[kind]
    data = build()
    original = tmp_path / f"ok.{kind}"
    original.write_bytes(data)
    assert sniff(original) == sniffed  # the fuzzed files start from a recognised one
    rng = random.Random(kind)
    for i, mutant in enumerate(_mutants(data, rng)):
        path = tmp_path / f"m{i}.{kind}"
        path.write_bytes(mutant)
        # sniff never raises; check_archive and the dataset readers raise only AKDError.
        sniff(path)
        for step in (
            lambda p: check_archive(p),
            lambda p: read_members(p, lambda n: True),
            lambda p: infer_dataset_format(p, None),
            lambda p: load_dataset(DatasetSpec(source="upload:x"), p, 0, tmp_path / "work"),
        ):
            with contextlib.suppress(AKDError):  # anything else fails the test
                step(path)
