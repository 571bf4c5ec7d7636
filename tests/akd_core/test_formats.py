"""Content sniffing and format inference for teacher and dataset files."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from akd_core.errors import DatasetError, TeacherLoadError
from akd_core.formats import (
    infer_dataset_format,
    infer_teacher_format,
    looks_like_archive,
    sniff,
)


def _onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def _torchscript(path: Path) -> Path:
    import torch

    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    return path


def _torch_pickle(path: Path) -> Path:
    import torch

    torch.save({"w": torch.zeros(2)}, str(path))
    return path


def _raw_pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    return path


def _safetensors(path: Path) -> Path:
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((2, 2), np.float32)}, str(path))
    return path


def _npz(path: Path) -> Path:
    with path.open("wb") as fh:
        np.savez(fh, x=np.zeros((4, 2)), y=np.arange(4))
    return path


def _zip(path: Path, names: tuple[str, ...] = ("cats/a.png", "dogs/b.png")) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, b"data")
    return path


def _tar(path: Path, names: tuple[str, ...] = ("cats/a.png", "dogs/b.png")) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 4
            tf.addfile(info, io.BytesIO(b"data"))
    return path


def _cifar(path: Path) -> Path:
    names = ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch")
    return _tar(path, (*names, "cifar-10-batches-py/batches.meta"))


def _csv(path: Path) -> Path:
    path.write_text("f1,f2,label\n0.5,1.0,cat\n0.1,2.0,dog\n")
    return path


def _jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(3)))
    return path


MAKERS = {
    "onnx": (_onnx, "m.bin"),
    "torchscript": (_torchscript, "m.bin"),
    "pickle": (_torch_pickle, "m.bin"),
    "safetensors": (_safetensors, "m.bin"),
    "npz": (_npz, "d.bin"),
    "zip": (_zip, "d.bin"),
    "tar": (_tar, "d.bin"),
    "cifar": (_cifar, "d.bin"),
    "csv": (_csv, "d.bin"),
    "jsonl": (_jsonl, "d.bin"),
}


@pytest.mark.parametrize("expected", sorted(MAKERS))
def test_sniff_recognises_content_whatever_the_name(tmp_path: Path, expected: str) -> None:
    maker, name = MAKERS[expected]
    assert sniff(maker(tmp_path / name)) == expected


def test_sniff_raw_pickle_and_unknown_bytes(tmp_path: Path) -> None:
    assert sniff(_raw_pickle(tmp_path / "p.bin")) == "pickle"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    assert sniff(junk) == "unknown"
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert sniff(empty) == "unknown"


def test_safetensors_header_that_looks_like_pickle_is_still_safetensors(tmp_path: Path) -> None:
    # A 640-byte header starts with 0x80 0x02, the same two bytes as a protocol-2 pickle.
    header = json.dumps({"__metadata__": {"pad": "x" * 600}}).encode().ljust(640)
    path = tmp_path / "t.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert sniff(path) == "safetensors"


@pytest.mark.parametrize(
    "maker,name,expected",
    [
        (_onnx, "teacher.onnx", "onnx"),
        (_torchscript, "teacher.pt", "torchscript"),
        (_safetensors, "teacher.safetensors", "safetensors"),
        (_onnx, "upload-3f2a", "onnx"),
    ],
)
def test_teacher_format_inferred_from_content(
    tmp_path: Path, maker, name: str, expected: str
) -> None:
    path = maker(tmp_path / name)
    assert infer_teacher_format(path, None) == expected
    assert infer_teacher_format(path, expected) == expected


def test_teacher_declared_onnx_but_pickle_names_field_and_fix(tmp_path: Path) -> None:
    path = _torch_pickle(tmp_path / "teacher.onnx")
    with pytest.raises(TeacherLoadError) as info:
        infer_teacher_format(path, "onnx")
    assert info.value.field == "teacher.format"
    assert "Python pickle" in info.value.message
    assert "ONNX" in info.value.message and "TorchScript" in info.value.message


def test_teacher_pickle_never_accepted_even_undeclared(tmp_path: Path) -> None:
    with pytest.raises(TeacherLoadError, match="never accepted.*safetensors"):
        infer_teacher_format(_raw_pickle(tmp_path / "model.pt"), None)


def test_teacher_declared_format_must_match_bytes(tmp_path: Path) -> None:
    with pytest.raises(TeacherLoadError, match="'torchscript' but the file is an ONNX model"):
        infer_teacher_format(_onnx(tmp_path / "m.pt"), "torchscript")


def test_teacher_hf_archive_needs_config_json(tmp_path: Path) -> None:
    good = _zip(tmp_path / "bert.zip", ("bert/config.json", "bert/model.safetensors"))
    assert infer_teacher_format(good, None) == "hf"
    with pytest.raises(TeacherLoadError, match="without a config.json"):
        infer_teacher_format(_zip(tmp_path / "other.zip"), "hf")


def test_teacher_unknown_content_lists_accepted_formats(tmp_path: Path) -> None:
    with pytest.raises(TeacherLoadError) as info:
        infer_teacher_format(_csv(tmp_path / "teacher.onnx"), None)
    assert "onnx, torchscript, safetensors, hf" in info.value.message
    assert "extension suggests 'onnx'" in info.value.message


@pytest.mark.parametrize(
    "maker,expected",
    [
        (_npz, "npz"),
        (_zip, "imagefolder"),
        (_tar, "imagefolder"),
        (_cifar, "cifar"),
        (_csv, "csv"),
        (_jsonl, "jsonl"),
    ],
)
def test_dataset_format_inferred_from_content(tmp_path: Path, maker, expected: str) -> None:
    path = maker(tmp_path / "upload")
    assert infer_dataset_format(path, None) == expected
    assert infer_dataset_format(path, expected) == expected


def test_dataset_declared_format_must_match_bytes(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        infer_dataset_format(_csv(tmp_path / "d.npz"), "npz")
    assert info.value.field == "dataset.format"
    assert "'npz' but 'd.npz' is a CSV table; set dataset.format to 'csv'" in info.value.message


def test_dataset_unknown_or_empty_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="npz, imagefolder, cifar, csv, jsonl"):
        infer_dataset_format(_raw_pickle(tmp_path / "d.npz"), None)
    empty = tmp_path / "empty.csv"
    empty.touch()
    with pytest.raises(DatasetError, match="empty"):
        infer_dataset_format(empty, None)
    with pytest.raises(DatasetError, match="does not exist"):
        infer_dataset_format(tmp_path / "missing.csv", None)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"PK\x03\x04truncated", True),  # zip local header
        (b"PK\x05\x06" + b"\0" * 18, True),  # an empty zip's end record
        (b"\x1f\x8b\x08garbage", True),  # gzip
        (b"BZh9garbage", True),  # bzip2
        (b"\xfd7zXZ\x00garbage", True),  # xz
        (b"\0" * 257 + b"ustar\x0000", True),  # plain tar
        (b"a,b\n1,2\n", False),
        (b"\x08\x07onnx-ish", False),
    ],
)
def test_a_file_that_starts_like_an_archive_is_named_so_even_when_corrupt(
    tmp_path: Path, head: bytes, expected: bool
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(head)
    assert looks_like_archive(path) is expected
