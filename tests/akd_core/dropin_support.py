"""Small image data and ONNX teachers for the drop-in tests: the teacher defines the input."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from akd_core.reference_teacher import make_reference_teacher
from akd_core.spec import DatasetSpec, JobSpec, parse_spec

COLORS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
PER_CLASS = 20
SIZE = 8
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def png_members(seed: int = 0) -> dict[str, bytes]:
    """Noisy 8x8 RGB PNGs, one folder per colour class."""
    rng = np.random.default_rng(seed)
    members = {}
    for name, color in COLORS.items():
        for i in range(PER_CLASS):
            noise = rng.integers(-50, 51, size=(SIZE, SIZE, 3))
            pixels = np.clip(np.array(color) + noise, 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels, "RGB").save(buf, format="PNG")
            members[f"colors/{name}/{i:02d}.png"] = buf.getvalue()
    return members


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip archive holding `members`."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def decode_png(data: bytes) -> np.ndarray:
    """What a user's own code gets from a PNG: (H, W, 3) uint8 RGB."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def rename_input(path: Path, name: str) -> Path:
    """Give the ONNX model's single input another name (as teachers from other tools have)."""
    proto = onnx.load(str(path))
    old = proto.graph.input[0].name
    proto.graph.input[0].name = name
    for node in proto.graph.node:
        node.input[:] = [name if i == old else i for i in node.input]
    onnx.save(proto, str(path))
    return path


def add_metadata(path: Path, **props: str) -> Path:
    """Add metadata_props to an ONNX file."""
    proto = onnx.load(str(path))
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def teacher_for(out: Path, source: str, input_name: str = "pixel_values", **dataset: Any) -> Path:
    """An ONNX cnn-tiny teacher trained on the data exactly as `dataset` feeds it."""
    # Trained on the arrays as stored unless told otherwise (not on AKD's defaults, which
    # would hide a job that feeds it something else).
    spec = DatasetSpec(source=source, **{"normalize": "none", **dataset})
    path, _ = make_reference_teacher(out, spec, arch="cnn-tiny", epochs=12)
    return rename_input(path, input_name)


def job(teacher: Path, data: Path, **over: Any) -> JobSpec:
    """A short job: cnn-tiny student, 2 + 1 epochs, CPU."""
    dataset = over.pop("dataset", {})
    spec: dict[str, Any] = {
        "teacher": {"source": f"file:{teacher}"},
        "student": {"arch": "cnn-tiny"},
        "dataset": {"source": f"file:{data}", **dataset},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
        "optimizer": {"batch_size": 16},
        "device": "cpu",
        **over,
    }
    return parse_spec(spec)


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """Logits of an ONNX model fed `x` under its own input name (as a user runs it)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an ONNX model fed `x` as is."""
    return float((onnx_logits(path, x).argmax(1) == y).mean())


def cifar_members(seed: int = 0) -> dict[str, bytes]:
    """A CIFAR-10-format archive's members: 32x32 colour-class images, 60 train and 24 test."""
    rng = np.random.default_rng(seed)
    colors = np.array(list(COLORS.values()))

    def batch(n: int) -> bytes:
        labels = np.arange(n) % len(COLORS)
        noise = rng.integers(-50, 51, size=(n, 32, 32, 3))
        pixels = np.clip(colors[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
        rows = pixels.transpose(0, 3, 1, 2).reshape(n, -1)  # CIFAR rows: R plane, G, B
        return pickle.dumps({b"data": rows, b"labels": [int(v) for v in labels]})

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(12) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(24)
    names = [name.encode() for name in COLORS]
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": names})
    return members
