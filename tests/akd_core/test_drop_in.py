"""student.onnx is a drop-in for teacher.onnx: the arrays the teacher takes give report.json's figures.

Each test feeds the stored data through the teacher's own input pipeline (float32 NCHW in
[0, 1] for images, arrays as stored, the user's mean/std where they gave one) into both
ONNX files with onnxruntime, and compares with what report.json claims.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import load_file

from akd_core.data import load_dataset
from akd_core.data.images import _read_image
from akd_core.pipeline import run_job
from akd_core.spec import JobSpec
from tests.akd_core import dropin_support as ds
from tests.akd_core.test_data_images import _write_tar


def _run(spec: JobSpec, out: Path) -> dict[str, Any]:
    run_job(spec, out, cache_dir=out.parent / "cache")
    return json.loads((out / "report.json").read_text())


def _stored_test(spec: JobSpec, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """The job's test split exactly as stored (uint8 NCHW pixels), and its labels."""
    loaded = load_dataset(spec.dataset, data, spec.seed)
    assert loaded.stored_test is not None
    return loaded.stored_test, loaded.y_test


def _imagenet_normalized(stored: np.ndarray) -> np.ndarray:
    """Stored uint8 NCHW pixels as a teacher trained on ImageNet mean/std takes them."""
    mean, std = (np.array(ds.IMAGENET[k], np.float32).reshape(1, 3, 1, 1) for k in ("mean", "std"))
    return (stored.astype(np.float32) / 255.0 - mean) / std


def _scored_as_reported(
    teacher: Path, out: Path, x: np.ndarray, y: np.ndarray, report: dict[str, Any]
) -> float:
    """Assert both ONNX files score on (x, y) what report.json says; the teacher's accuracy."""
    teacher_accuracy = ds.onnx_accuracy(teacher, x, y)
    assert teacher_accuracy == report["teacher"]["accuracy"]
    assert ds.onnx_accuracy(out / "student.onnx", x, y) == report["student"]["accuracy"]
    return teacher_accuracy


def _input(path: Path) -> ort.NodeArg:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An image-folder zip, an ONNX teacher trained on it as stored, and two finished jobs."""
    root = tmp_path_factory.mktemp("folder")
    members = ds.png_members()
    data = ds.write_zip(root / "colors.zip", members)
    teacher = ds.teacher_for(root / "teacher.onnx", f"file:{data}")
    spec = ds.job(teacher, data)
    raw_spec = ds.job(teacher, data, export={"raw_input": True})
    return {
        "members": members, "data": data, "teacher": teacher, "spec": spec,
        "report": _run(spec, root / "float"), "out": root / "float",
        "raw_report": _run(raw_spec, root / "raw"), "raw_out": root / "raw",
    }  # fmt: skip


def test_image_folder_student_takes_exactly_the_teachers_input(folder: dict[str, Any]) -> None:
    stored, y = _stored_test(folder["spec"], folder["data"])
    x = stored.astype(np.float32) / 255.0  # the teacher's own pipeline: NCHW in [0, 1]
    report, student = folder["report"], folder["out"] / "student.onnx"
    assert ds.onnx_accuracy(folder["teacher"], x, y) == report["teacher"]["accuracy"] == 1.0
    assert ds.onnx_accuracy(student, x, y) == report["student"]["accuracy"]
    assert report["onnx"]["accuracy"] == report["student"]["accuracy"]
    # Same input name, dtype and layout as the teacher's.
    teacher_in, student_in = _input(folder["teacher"]), _input(student)
    assert student_in.name == teacher_in.name == "pixel_values"
    assert student_in.type == teacher_in.type == "tensor(float)"
    assert student_in.shape[1:] == teacher_in.shape[1:] == [3, ds.SIZE, ds.SIZE]
    contract = report["input_contract"]
    assert (contract["layout"], contract["dtype"], contract["raw_input"]) == (
        "NCHW",
        "float32",
        False,
    )
    assert contract["value_range"] == [0.0, 1.0] and report["preprocessing"]["mode"] == "none"


def test_raw_input_student_takes_pil_decoded_pngs(folder: dict[str, Any]) -> None:
    """export.raw_input: uint8 NHWC RGB straight from PIL, same predictions as the float path."""
    pixels = np.stack([ds.decode_png(b) for b in folder["members"].values()])  # (N, H, W, 3)
    raw_student, float_student = folder["raw_out"] / "student.onnx", folder["out"] / "student.onnx"
    raw_in = _input(raw_student)
    assert (raw_in.name, raw_in.type, raw_in.shape[1:]) == (
        "pixel_values", "tensor(uint8)", [ds.SIZE, ds.SIZE, 3],
    )  # fmt: skip
    raw = ds.onnx_logits(raw_student, pixels)
    floats = ds.onnx_logits(float_student, pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    np.testing.assert_allclose(raw, floats, atol=1e-4)
    assert (raw.argmax(1) == floats.argmax(1)).all()
    # The report measured the raw file on the stored test split: the same figures.
    report, raw_report = folder["report"], folder["raw_report"]
    assert raw_report["onnx"]["accuracy"] == report["onnx"]["accuracy"]
    assert raw_report["onnx"]["argmax_agreement"] == 1.0
    contract = raw_report["input_contract"]
    assert (contract["layout"], contract["dtype"], contract["raw_input"]) == ("NHWC", "uint8", True)
    assert contract["value_range"] == [0.0, 255.0]
    assert contract["steps_in_graph"][:3] == ["cast to float32", "divide by 255", "NHWC -> NCHW"]


def test_npz_of_unit_range_images_is_fed_as_stored(tmp_path: Path) -> None:
    """The issue's case: 4-D float images in [0, 1] and a teacher trained on exactly those."""
    rng = np.random.default_rng(3)
    colors = np.array(list(ds.COLORS.values()), np.float32) / 255.0  # (3, 3)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 3
        x = colors[y][:, :, None, None] + rng.uniform(-0.2, 0.2, (n, 3, ds.SIZE, ds.SIZE))
        return np.clip(x, 0, 1).astype(np.float32), y

    (x, y), (xt, yt) = images(60), images(24)
    data = tmp_path / "images.npz"
    np.savez(data, x=x, y=y, x_test=xt, y_test=yt)
    teacher = ds.teacher_for(tmp_path / "teacher.onnx", f"file:{data}")
    report = _run(ds.job(teacher, data), tmp_path / "out")
    assert _scored_as_reported(teacher, tmp_path / "out", xt, yt, report) >= 0.7
    assert report["input_contract"]["value_range_source"] == "observed on the training split"


def test_cifar_archive_student_takes_unit_range_nchw(tmp_path: Path) -> None:
    data = _write_tar(tmp_path / "cifar-10-python.tar.gz", ds.cifar_members())
    cifar = {"format": "cifar"}
    teacher = ds.teacher_for(tmp_path / "teacher.onnx", f"file:{data}", **cifar)
    spec = ds.job(teacher, data, dataset=cifar)
    report = _run(spec, tmp_path / "out")
    stored, y = _stored_test(spec, data)
    x = stored.astype(np.float32) / 255.0  # test_batch as stored, in [0, 1]
    assert _scored_as_reported(teacher, tmp_path / "out", x, y, report) >= 0.6
    assert _input(tmp_path / "out" / "student.onnx").shape[1:] == [3, 32, 32]


def test_teacher_trained_on_explicit_mean_std_shares_it_with_the_student(tmp_path: Path) -> None:
    """dataset.normalize with ImageNet mean/std: both models take (x/255 - mean) / std."""
    data = ds.write_zip(tmp_path / "colors.zip", ds.png_members(seed=1))
    norm = {"normalize": ds.IMAGENET}
    teacher = ds.teacher_for(tmp_path / "teacher.onnx", f"file:{data}", **norm)
    spec = ds.job(teacher, data, dataset=norm)
    report = _run(spec, tmp_path / "out")
    stored, y = _stored_test(spec, data)
    x = _imagenet_normalized(stored)
    assert _scored_as_reported(teacher, tmp_path / "out", x, y, report) == 1.0
    contract = report["input_contract"]
    assert contract["normalize"]["mode"] == "explicit"
    np.testing.assert_allclose(contract["normalize"]["mean"], ds.IMAGENET["mean"])
    np.testing.assert_allclose(contract["normalize"]["std"], ds.IMAGENET["std"])


def test_teacher_declared_mean_std_is_used_and_reported(tmp_path: Path) -> None:
    """No dataset.normalize, but the teacher's ONNX metadata says mean/std: that is fed."""
    data = ds.write_zip(tmp_path / "colors.zip", ds.png_members(seed=2))
    teacher = ds.teacher_for(tmp_path / "teacher.onnx", f"file:{data}", normalize=ds.IMAGENET)
    ds.add_metadata(teacher, mean=json.dumps(ds.IMAGENET["mean"]), std="0.229, 0.224, 0.225")
    spec = ds.job(teacher, data)
    report = _run(spec, tmp_path / "out")
    stored, y = _stored_test(spec, data)
    x = _imagenet_normalized(stored)
    assert _scored_as_reported(teacher, tmp_path / "out", x, y, report) == 1.0
    assert report["preprocessing"]["origin"] == "teacher ONNX metadata"
    np.testing.assert_allclose(report["input_contract"]["normalize"]["std"], ds.IMAGENET["std"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_student_onnx_metadata_states_provenance_and_input_contract(folder: dict[str, Any]) -> None:
    """A deployment reads hashes and the input contract from the file, without report.json."""
    for out, report in (
        (folder["out"], folder["report"]),
        (folder["raw_out"], folder["raw_report"]),
    ):
        model = onnx.load(str(out / "student.onnx"))
        meta = {p.key: p.value for p in model.metadata_props}
        spec_json = json.dumps(report["spec"], sort_keys=True, separators=(",", ":"))
        assert meta["akd.spec_sha256"] == hashlib.sha256(spec_json.encode()).hexdigest()
        assert meta["akd.teacher_sha256"] == _sha256(folder["teacher"])
        assert meta["akd.dataset_sha256"] == _sha256(folder["data"])
        assert json.loads(meta["akd.input_contract"]) == report["input_contract"]
        assert json.loads(meta["labels"]) == ["blue", "green", "red"]
        raw = report["spec"]["export"]["raw_input"]
        assert (meta["input_layout"], meta["input_dtype"]) == (
            ("NHWC", "uint8") if raw else ("NCHW", "float32")
        )
        assert meta["input_name"] == "pixel_values"
        assert json.loads(meta["input_value_range"]) == ([0.0, 255.0] if raw else [0.0, 1.0])
        assert meta["preprocessing_in_graph"] == ("all" if raw else "standardize only")
    float_meta = onnx.load(str(folder["out"] / "student.onnx")).metadata_props
    raw_meta = onnx.load(str(folder["raw_out"] / "student.onnx")).metadata_props
    spec_hashes = {
        next(p.value for p in props if p.key == "akd.spec_sha256")
        for props in (float_meta, raw_meta)
    }
    assert len(spec_hashes) == 2  # export.raw_input is part of the spec


def test_the_student_standardises_with_training_split_statistics(folder: dict[str, Any]) -> None:
    """The student's own input layer (in its graph) holds the training split's channel stats."""
    loaded = load_dataset(folder["spec"].dataset, folder["data"], folder["spec"].seed)
    standardize = folder["report"]["input_contract"]["standardize"]
    np.testing.assert_allclose(standardize["mean"], loaded.x_train.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(standardize["std"], loaded.x_train.std(axis=(0, 2, 3)), rtol=1e-4)
    weights = load_file(str(folder["out"] / "student.safetensors"))
    np.testing.assert_allclose(weights["input_layer.mean"].ravel(), standardize["mean"], rtol=1e-6)


def _readme_snippet(heading: str) -> str:
    """The first python code block after `heading` in the README."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = text[text.index(heading) :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```", start)]


def test_readme_feeds_an_image_file_to_the_student_as_the_job_did(
    folder: dict[str, Any], tmp_path: Path
) -> None:
    """The README's snippet (PIL -> RGB -> resize -> /255 -> NCHW) gives the job's own input."""
    code = _readme_snippet("### What the teacher and `student.onnx` receive")
    name, png = next(iter(folder["members"].items()))
    (tmp_path / "cat.png").write_bytes(png)
    student = folder["out"] / "student.onnx"
    code = code.replace('"cat.png"', repr(str(tmp_path / "cat.png")))
    code = code.replace('"student.onnx"', repr(str(student))).replace("(32, 32)", "(8, 8)")
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    # What the job's loader makes of the same file: the teacher's and the student's input.
    pixels = _read_image(tmp_path / "cat.png", name, ds.SIZE, "README")
    expected = pixels.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    assert scope["x"].shape == (1, 3, ds.SIZE, ds.SIZE) and scope["x"].dtype == np.float32
    np.testing.assert_array_equal(scope["x"], expected)
    np.testing.assert_allclose(scope["logits"], ds.onnx_logits(student, expected), atol=1e-6)
