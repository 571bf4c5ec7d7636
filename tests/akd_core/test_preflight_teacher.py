"""Pre-flight of the teacher: its input shape and output size are checked before data is read."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from akd_core import pipeline
from akd_core.cli import main as distill
from akd_core.data import load_dataset
from akd_core.data.peek import peek_exact
from akd_core.exit_codes import EXIT_USAGE
from akd_core.spec import DatasetSpec
from tests.akd_core.dropin_support import png_members, write_zip
from tests.akd_core.test_preflight import Spy
from tests.akd_core.trainer_support import install_fixed_teacher, write_dataset


@pytest.fixture
def data_spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """The pipeline's data loader, replaced by a spy that fails the test if reached."""
    spy = Spy()
    monkeypatch.setattr(pipeline, "load_dataset", spy)
    return spy


def _gray_png(value: int, size: tuple[int, int] = (6, 5)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG")
    return buf.getvalue()


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _datasets(tmp: Path) -> dict[str, tuple[dict[str, Any], Path | None]]:
    rng = np.random.default_rng(0)
    gray = {f"digits/{c}/{i}.png": _gray_png(30 * i) for c in "abcd" for i in range(4)}
    # One colour image among grayscale ones: the loader makes every image RGB.
    mixed = {**gray, "digits/d/9.png": _png_rgb((6, 5))}
    return {
        "npz string labels": (
            {"format": "npz"},
            _npz(tmp / "s.npz", x=rng.normal(size=(30, 7)).astype(np.float32),
                 y=np.array(["cat", "dog", "eel", "ant", "bee"] * 6),
                 x_test=np.zeros((6, 7), np.float32), y_test=np.array(["eel", "dog"] * 3)),
        ),
        "npz NHWC with class names": (
            {"format": "npz"},
            _npz(tmp / "h.npz", x=np.zeros((21, 5, 6, 3), np.uint8), y=np.arange(21) % 3,
                 classes=np.array(["a", "b", "c"])),
        ),
        "npz declared classes": (
            {"format": "npz", "num_classes": 6},
            _npz(tmp / "d.npz", x=np.zeros((24, 2, 9), np.float32), y=np.arange(24) % 6),
        ),
        "image folder RGB": ({"format": "imagefolder"}, write_zip(tmp / "c.zip", png_members())),
        "image folder gray resized": (
            {"format": "imagefolder", "image_size": 8}, write_zip(tmp / "g.zip", gray)
        ),
        "image folder one colour image": ({"format": "imagefolder"}, write_zip(tmp / "m.zip", mixed)),
        "builtin": ({"source": "builtin:digits"}, None),
    }  # fmt: skip


def _png_rgb(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_the_exact_peek_is_what_the_loader_finds(tmp_path):
    """Shape and class count told by headers and names only equal the loaded dataset's."""
    for name, (over, path) in _datasets(tmp_path).items():
        spec = DatasetSpec(**{"source": f"file:{path}", **over})
        fmt = over.get("format")
        ds = load_dataset(spec, path, 0, tmp_path)
        assert peek_exact(spec, fmt, path) == (ds.input_shape, ds.num_classes), name


def test_the_exact_peek_reads_no_images_and_no_x(tmp_path, monkeypatch):
    """The x array is never inflated: only the labels and the headers are read."""
    path = _npz(tmp_path / "d.npz", x=np.zeros((40, 3, 4, 4), np.float32), y=np.arange(40) % 4)
    real_load = np.load
    read: list[str] = []

    class Watch:
        def __init__(self, npz: Any) -> None:
            self.npz = npz

        def __enter__(self) -> Watch:
            return self

        def __exit__(self, *exc: object) -> None:
            self.npz.close()

        def __getitem__(self, key: str) -> np.ndarray:
            read.append(key)
            return self.npz[key]

    monkeypatch.setattr(np, "load", lambda *a, **k: Watch(real_load(*a, **k)))
    assert peek_exact(DatasetSpec(source=f"file:{path}"), "npz", path) == ((3, 4, 4), 4)
    assert read == ["y"]


def test_unknowns_stay_unknown(tmp_path):
    """Where the headers do not tell, nothing is guessed (the check then runs after loading)."""
    floats = _npz(tmp_path / "f.npz", x=np.zeros((4, 3), np.float32), y=np.array([0.5] * 4))
    assert peek_exact(DatasetSpec(source="file:x"), "npz", floats) == ((3,), None)
    assert peek_exact(DatasetSpec(source="file:x"), "cifar", floats) == ((3, 32, 32), None)
    assert peek_exact(DatasetSpec(source="file:x", num_classes=10), "cifar", floats)[1] == 10


def _onnx_teacher(path: Path, input_dims: list[Any], classes: int) -> Path:
    """A linear ONNX classifier taking `input_dims` (after the batch) to `classes` logits."""
    features = int(np.prod([d for d in input_dims]))
    w = numpy_helper.from_array(np.ones((features, classes), np.float32) * 0.01, "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_dims])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _run_cli(
    tmp_path: Path, teacher: Path, dataset: dict[str, Any], capsys, **over: Any
) -> tuple[int, str, float]:
    spec = {
        "teacher": {"source": f"file:{teacher}", "format": "onnx"},
        "student": {"arch": "mlp", "options": {"hidden": [8]}},
        **over,
        "dataset": dataset,
        "annealing": {"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0},
        "device": "cpu",
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    t0 = time.perf_counter()
    code = distill([str(path), "--out", str(tmp_path / "out"), "--quiet"])
    return code, capsys.readouterr().err, time.perf_counter() - t0


@pytest.mark.slow  # a real sandboxed teacher process
@pytest.mark.parametrize(
    ("dims", "classes", "words"),
    [
        ([1, 8, 8], 5, "the teacher outputs 5 classes but the dataset has 10 classes "
         "(dataset.source, samples of shape (1, 8, 8)); expected (2, 10) logits for input "
         "(2, 1, 8, 8), found (2, 5)"),
        ([3, 32, 32], 10, "the teacher does not take the dataset's samples: fed shape "
         "(2, 1, 8, 8); the model declares input shape"),
    ],
)  # fmt: skip
def test_a_real_onnx_teacher_that_does_not_fit_fails_before_the_data_is_read(
    tmp_path, data_spy, capsys, dims, classes, words
):
    """Through the CLI and the real sandboxed teacher: exit 2, the field and what was found."""
    teacher = _onnx_teacher(tmp_path / "t.onnx", dims, classes)
    code, err, elapsed = _run_cli(tmp_path, teacher, {"source": "builtin:digits"}, capsys)
    assert code == EXIT_USAGE
    assert f"error: teacher.source: {words}" in err
    assert data_spy.calls == 0
    assert elapsed < 60  # seconds on a loaded machine; no data read, no training


def test_a_wrong_class_count_in_an_npz_stops_before_the_data_is_loaded(
    tmp_path, data_spy, capsys, monkeypatch
):
    data = write_dataset(tmp_path / "d.npz")  # 3 classes, told by its labels
    teacher = tmp_path / "t.npy"
    np.save(teacher, np.zeros((64, 5), np.float32))  # 5 logits
    install_fixed_teacher(monkeypatch)
    code, err, _ = _run_cli(tmp_path, teacher, {"source": f"file:{data}", "format": "npz"}, capsys)
    assert code == EXIT_USAGE
    assert "the teacher outputs 5 classes but the dataset has 3 classes" in err
    assert data_spy.calls == 0


@pytest.mark.parametrize(
    ("source", "over"),
    [
        ("builtin:digits", {}),
        ("s.npz", {}),  # x_test given, val carved
        ("s.npz", {"max_train_samples": 9, "val_fraction": 0.3}),
        ("h.npz", {"test_fraction": 0.25}),  # both carved
    ],
)
def test_the_sample_counts_from_headers_are_the_loaded_splits(tmp_path, source, over):
    from akd_core.data.peek import peek_counts

    datasets = {p.name: (o, p) for o, p in _datasets(tmp_path).values() if p is not None}
    fmt, path = (None, None)
    if source.endswith(".npz"):
        fmt, path = "npz", datasets[source][1]
        source = f"file:{path}"
    spec = DatasetSpec(source=source, **over)
    ds = load_dataset(spec, path, 0, tmp_path)
    loaded = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert peek_counts(spec, fmt, path) == (loaded, len(ds.y_train))


def test_memory_over_the_device_stops_before_the_data_and_the_teacher(
    tmp_path, data_spy, capsys, monkeypatch
):
    """The estimate from the npz headers runs before anything is loaded."""
    from akd_core import preflight

    data, teacher = write_dataset(tmp_path / "d.npz"), tmp_path / "t.npy"
    np.save(teacher, np.zeros((64, 3), np.float32))
    loaded = install_fixed_teacher(monkeypatch)
    monkeypatch.setattr(preflight, "available_memory", lambda device, resident=0: 2 * 1024**2)
    spec = {"source": f"file:{data}", "format": "npz"}
    code, err, _ = _run_cli(
        tmp_path, teacher, spec, capsys, optimizer={"batch_size": 4096},
        student={"arch": "cnn", "options": {"width": 64}},
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert err.startswith("error: optimizer.batch_size: the run needs an estimated"), err
    assert data_spy.calls == 0 and loaded == []
