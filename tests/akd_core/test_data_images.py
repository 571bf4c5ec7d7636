"""Image-folder archives and CIFAR python archives, including hostile pickles."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from akd_core.data import load_dataset
from akd_core.errors import DatasetError
from akd_core.spec import DatasetSpec


def _png(color: tuple[int, int, int], size: tuple[int, int] = (6, 6), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(buf, format="PNG")
    return buf.getvalue()


def _folder_members(prefix: str = "pets/", n: int = 10, mode: str = "RGB") -> dict[str, bytes]:
    colors = {"cat": (250, 0, 0), "dog": (0, 0, 250)}
    return {
        f"{prefix}{cls}/{i}.png": _png(col, mode=mode)
        for cls, col in colors.items()
        for i in range(n)
    }


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("writer,name", [(_write_zip, "pets.zip"), (_write_tar, "pets.tar.gz")])
def test_imagefolder_archive_loads_classes_from_folders(tmp_path: Path, writer, name: str) -> None:
    path = writer(tmp_path / name, _folder_members())
    ds = load_dataset(
        DatasetSpec(source="upload:x", normalize="none"), path, seed=0, work_dir=tmp_path / "w"
    )
    assert ds.classes == ["cat", "dog"] and ds.kind == "image"
    assert (
        ds.input_shape == (3, 6, 6) and sum(len(y) for y in (ds.y_train, ds.y_val, ds.y_test)) == 20
    )
    # Cats are red, dogs blue, in [0, 1]: the label follows the folder.
    red = ds.x_train[:, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, np.where(ds.y_train == 0, 250 / 255, 0.0), atol=1e-6)


def test_grayscale_images_resized_to_image_size(tmp_path: Path) -> None:
    members = _folder_members(prefix="", mode="L")
    members["dog/big.png"] = _png((9, 9, 9), size=(20, 12), mode="L")
    path = _write_zip(tmp_path / "g.zip", members)
    ds = load_dataset(DatasetSpec(source="upload:x", image_size=8), path, seed=0)
    assert ds.input_shape == (1, 8, 8)
    assert ds.normalization["mode"] == "none" and ds.normalization["scale"] == "0-1"
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0  # float32 NCHW in [0, 1]


def test_mixed_sizes_without_image_size_is_refused(tmp_path: Path) -> None:
    members = _folder_members()
    members["pets/dog/odd.png"] = _png((1, 2, 3), size=(7, 6))
    with pytest.raises(DatasetError, match=r"'pets/dog/odd.png' is 7x6.*dataset.image_size"):
        load_dataset(
            DatasetSpec(source="upload:x"), _write_zip(tmp_path / "m.zip", members), seed=0
        )


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    members = _folder_members()
    members["pets/cat/broken.png"] = b"\x89PNG not really"
    with pytest.raises(DatasetError, match="'pets/cat/broken.png' is not a readable image"):
        load_dataset(
            DatasetSpec(source="upload:x"), _write_zip(tmp_path / "b.zip", members), seed=0
        )


def test_imagefolder_with_one_class_is_refused(tmp_path: Path) -> None:
    members = {k: v for k, v in _folder_members().items() if "/cat/" in k}
    members["pets/notes.txt"] = b"not a class"
    with pytest.raises(DatasetError) as err:
        load_dataset(
            DatasetSpec(source="upload:x"), _write_zip(tmp_path / "one.zip", members), seed=0
        )
    # it says where it looked and what it found there
    assert "needs one subfolder per class (2 or more); found 1 in 'pets/': 'cat', " in str(
        err.value
    )
    assert "and 1 file(s) outside any class folder" in str(err.value)


def test_unsafe_imagefolder_archive_is_refused(tmp_path: Path) -> None:
    members = _folder_members()
    members["../../escape.png"] = _png((0, 0, 0))
    work = tmp_path / "w"
    work.mkdir()
    with pytest.raises(DatasetError, match="'..'"):
        load_dataset(
            DatasetSpec(source="upload:x"),
            _write_zip(tmp_path / "e.zip", members),
            seed=0,
            work_dir=work,
        )
    assert not (tmp_path / "escape.png").exists()
    assert [p for p in work.rglob("*") if p.is_file()] == []


# ---- CIFAR -------------------------------------------------------------------------------


def _batch(n: int, label_key: bytes, k: int, seed: int, as_array: bool, protocol: int = 2) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in np.arange(n) % k]
    batch = {
        b"batch_label": b"training batch",
        label_key: labels,
        b"data": data if as_array else data.tobytes(),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=protocol)


def _cifar10(path: Path, batches: dict[str, bytes] | None = None, protocol: int = 2) -> Path:
    members = {
        f"cifar-10-batches-py/data_batch_{i}": _batch(10, b"labels", 10, i, True, protocol)
        for i in range(1, 6)
    }
    members["cifar-10-batches-py/test_batch"] = _batch(20, b"labels", 10, 9, True, protocol)
    names = [f"class{i}".encode() for i in range(10)]
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": names, b"num_vis": 3072}
    )
    members.update(batches or {})
    return _write_tar(path, members)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_archive_with_numpy_batches(tmp_path: Path, protocol: int) -> None:
    path = _cifar10(tmp_path / "cifar-10-python.tar.gz", protocol=protocol)
    ds = load_dataset(DatasetSpec(source="upload:x", normalize="none"), path, seed=0)
    assert ds.classes == [f"class{i}" for i in range(10)] and ds.input_shape == (3, 32, 32)
    assert len(ds.y_test) == 20 and len(ds.y_train) + len(ds.y_val) == 50
    # The test split is test_batch, pixel for pixel, scaled to [0, 1].
    raw = np.random.default_rng(9).integers(0, 256, size=(20, 3072), dtype=np.uint8)
    np.testing.assert_allclose(ds.x_test.reshape(20, -1), raw / 255.0, atol=1e-6)


def test_cifar100_archive_uses_fine_labels(tmp_path: Path) -> None:
    members = {
        "cifar-100-python/train": _batch(200, b"fine_labels", 100, 1, False),
        "cifar-100-python/test": _batch(100, b"fine_labels", 100, 2, False),
        "cifar-100-python/meta": pickle.dumps(
            {b"fine_label_names": [f"c{i}".encode() for i in range(100)]}
        ),
    }
    path = _write_tar(tmp_path / "cifar-100-python.tar.gz", members)
    ds = load_dataset(DatasetSpec(source="upload:x"), path, seed=0)
    assert ds.num_classes == 100 and ds.classes[42] == "c42" and len(ds.y_test) == 100


class _Payload:
    """Unpickling this runs os.system: what a hostile CIFAR batch would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_batch_with_a_global_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"labels": [0], b"x": _Payload(marker), b"data": bytes(3072)}, protocol=4)
    path = _cifar10(tmp_path / "c.tar.gz", {"cifar-10-batches-py/data_batch_3": evil})
    with pytest.raises(
        DatasetError, match="data_batch_3.*cannot be loaded safely.*global '(posix|os).system'"
    ):
        load_dataset(DatasetSpec(source="upload:x"), path, seed=0)
    assert not marker.exists()


def test_cifar_batch_with_numpy_object_array_is_refused(tmp_path: Path) -> None:
    # An object array pickles its items as arbitrary objects: refused even with numpy's names.
    evil = pickle.dumps({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}, protocol=2)
    path = _cifar10(tmp_path / "c.tar.gz", {"cifar-10-batches-py/test_batch": evil})
    with pytest.raises(DatasetError, match="test_batch.*cannot be loaded safely"):
        load_dataset(DatasetSpec(source="upload:x"), path, seed=0)


def _py2_string(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING: how Python 2 wrote a str


def _py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch opcode for opcode as Python 2 + numpy wrote the published CIFAR files."""
    n, m = data.shape
    dtype = (
        b"cnumpy\ndtype\n"
        + _py2_string(b"u1")
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + _py2_string(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    raw = data.tobytes()
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + b"K\x00\x85"
        + _py2_string(b"b")
        + b"\x87R"
        + b"(K\x01M"
        + struct.pack("<H", n)
        + b"M"
        + struct.pack("<H", m)
        + b"\x86"
        + dtype
        + b"\x89T"
        + struct.pack("<I", len(raw))
        + raw
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (
        b"\x80\x02}(" + _py2_string(b"data") + array + _py2_string(b"labels") + label_list + b"u."
    )


def test_cifar_batches_in_the_published_python2_format(tmp_path: Path) -> None:
    data = np.random.default_rng(5).integers(0, 256, size=(10, 3072), dtype=np.uint8)
    batch = _py2_batch(data, [i % 10 for i in range(10)])
    # The fixture is a faithful numpy pickle: the (trusted, test-made) stock unpickler agrees.
    assert np.array_equal(pickle.loads(batch, encoding="bytes")[b"data"], data)
    members = {f"cifar-10-batches-py/data_batch_{i}": batch for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch
    path = _cifar10(tmp_path / "c.tar.gz", members)
    ds = load_dataset(DatasetSpec(source="upload:x", normalize="none"), path, seed=0)
    np.testing.assert_allclose(ds.x_test.reshape(10, -1), data / 255.0, atol=1e-6)


def test_the_callers_archive_caps_apply(tmp_path: Path) -> None:
    """The service passes its configured caps; an archive within the defaults can exceed them."""
    from akd_core.archives import ArchiveLimits

    path = _write_zip(tmp_path / "pets.zip", _folder_members(n=10))
    spec = DatasetSpec(source="file:pets.zip")
    assert load_dataset(spec, path, 0).num_classes == 2
    with pytest.raises(DatasetError, match="members"):
        load_dataset(spec, path, 0, limits=ArchiveLimits(max_members=5))
    cifar = _cifar10(tmp_path / "c.tar.gz")
    with pytest.raises(DatasetError, match="members"):
        load_dataset(DatasetSpec(source="file:c"), cifar, 0, limits=ArchiveLimits(max_members=2))
