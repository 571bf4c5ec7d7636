"""Teacher loading: each format predicts like the model it came from; unsafe or unfit files are refused.

Most tests load in-process (the loaders' own logic); test_teacher_sandbox.py covers the
same formats through the sandboxed `load_teacher`.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.torch import save_file

from akd_core.errors import SpecError, TeacherLoadError
from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.spec import TeacherSpec
from akd_core.teachers import check_teacher, load_teacher, load_teacher_in_process

torch.set_num_threads(1)
CPU = torch.device("cpu")
SHAPE = (1, 8, 8)
CLASSES = 3


def _spec(name: str, fmt: str | None, **kw: object) -> TeacherSpec:
    return TeacherSpec(source=f"file:{name}", format=fmt, **kw)  # type: ignore[arg-type]


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    # Non-trivial BatchNorm statistics, so eval vs train mode gives different outputs.
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return _trained_like(build_model("cnn-tiny", SHAPE, CLASSES))


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(10, *SHAPE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory, model: torch.nn.Module) -> Path:
    return export_onnx(model, SHAPE, tmp_path_factory.mktemp("t") / "teacher.onnx", {})


def _expected(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def test_onnx_teacher_predicts_like_the_torch_model(
    onnx_file: Path, model: torch.nn.Module, x: torch.Tensor
) -> None:
    teacher = load_teacher_in_process(_spec("teacher.onnx", "onnx"), onnx_file, CPU)
    out = teacher.predict(x)
    assert out.dtype == torch.float32 and out.shape == (10, CLASSES)
    torch.testing.assert_close(out, _expected(model, x), atol=1e-4, rtol=0)
    np.testing.assert_allclose(teacher.logits_for(x.numpy(), batch_size=3), out.numpy(), atol=1e-6)
    assert teacher.module is None and teacher.format == "onnx"
    assert teacher.fingerprint == hashlib.sha256(onnx_file.read_bytes()).hexdigest()


def test_format_is_inferred_from_the_bytes(onnx_file: Path) -> None:
    assert load_teacher_in_process(_spec("teacher.onnx", None), onnx_file, CPU).format == "onnx"


def test_fixed_batch_onnx_is_fed_in_padded_chunks(
    tmp_path: Path, model: torch.nn.Module, x: torch.Tensor
) -> None:
    path = tmp_path / "fixed.onnx"
    # No dynamic axes: the file only accepts batches of exactly 4.
    torch.onnx.export(model, (torch.zeros(4, *SHAPE),), str(path), dynamo=False, opset_version=17)
    teacher = load_teacher_in_process(_spec("fixed.onnx", "onnx"), path, CPU)
    assert teacher.declared_input is not None and teacher.declared_input.fixed_batch == 4
    out = teacher.logits_for(x.numpy(), batch_size=64)  # 10 rows: chunks of 4, 4, 2 + padding
    assert out.shape == (10, CLASSES)
    np.testing.assert_allclose(out, _expected(model, x).numpy(), atol=1e-4)
    check_teacher(teacher, SHAPE, CLASSES)


def test_onnx_with_two_inputs_is_refused(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["b", 3])
    b = helper.make_tensor_value_info("b2", TensorProto.FLOAT, ["b", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b2"], ["y"])], "g", [a, b], [y])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(TeacherLoadError, match="2 inputs"):
        load_teacher_in_process(_spec("two.onnx", "onnx"), path, CPU)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_teacher_predicts_like_the_torch_model(
    tmp_path: Path, model: torch.nn.Module, x: torch.Tensor, how: str
) -> None:
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x[:2])
    path = tmp_path / "teacher.pt"
    torch.jit.save(scripted, str(path))
    teacher = load_teacher_in_process(_spec("teacher.pt", None), path, CPU)
    assert teacher.format == "torchscript" and teacher.module is not None
    torch.testing.assert_close(teacher.predict(x), _expected(model, x), atol=1e-4, rtol=0)


def test_teacher_is_frozen_and_batchnorm_does_not_update(
    tmp_path: Path, model: torch.nn.Module, x: torch.Tensor
) -> None:
    path = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    spec = _spec("teacher.safetensors", "safetensors", arch="cnn-tiny")
    teacher = load_teacher_in_process(spec, path, CPU, input_shape=SHAPE, num_classes=CLASSES)
    assert teacher.module is not None
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    out = teacher.predict(x * 5 + 3)
    assert not out.requires_grad
    assert not teacher.module.training
    assert all(not p.requires_grad for p in teacher.module.parameters())
    for k, v in teacher.module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_safetensors_teacher_predicts_like_the_torch_model(
    tmp_path: Path, model: torch.nn.Module, x: torch.Tensor
) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    spec = _spec("w.safetensors", None, arch="cnn-tiny")
    teacher = load_teacher_in_process(spec, path, CPU, input_shape=SHAPE, num_classes=CLASSES)
    assert teacher.format == "safetensors"
    torch.testing.assert_close(teacher.predict(x), _expected(model, x), atol=1e-4, rtol=0)
    teacher.release()
    with pytest.raises(RuntimeError, match="released"):
        teacher.predict(x)


def test_safetensors_with_the_wrong_arch_lists_the_keys(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    spec = _spec("w.safetensors", "safetensors", arch="resnet8")
    with pytest.raises(TeacherLoadError) as err:
        load_teacher_in_process(spec, path, CPU, input_shape=SHAPE, num_classes=CLASSES)
    assert err.value.field == "teacher.arch"
    assert "'resnet8'" in err.value.message
    assert "missing: stem.0.weight" in err.value.message
    assert "unexpected: features.0.0.weight" in err.value.message


def test_safetensors_with_other_class_count_shows_shapes(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    spec = _spec("w.safetensors", "safetensors", arch="cnn-tiny")
    with pytest.raises(TeacherLoadError, match=r"fc\.weight \(file \(3, 16\), model \(10, 16\)\)"):
        load_teacher_in_process(spec, path, CPU, input_shape=SHAPE, num_classes=10)


def test_unknown_teacher_arch_is_a_spec_error(tmp_path: Path, model: torch.nn.Module) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(SpecError) as err:
        load_teacher_in_process(
            _spec("w.safetensors", "safetensors", arch="vgg"),
            path,
            CPU,
            input_shape=SHAPE,
            num_classes=3,
        )
    assert err.value.field == "teacher.arch"


class _Payload:
    """Unpickling this runs Path.touch(marker): the classic malicious-pickle shape."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_before_unpickling(tmp_path: Path, zip_format: bool) -> None:
    # The payload really runs when unpickled unsafely (here, our own bytes): prove it.
    proof_marker = tmp_path / "proof-ran"
    pickle.loads(pickle.dumps(_Payload(proof_marker)))
    assert proof_marker.exists()

    evil, marker = tmp_path / "teacher.pt", tmp_path / "pwned"
    torch.save(_Payload(marker), evil, _use_new_zipfile_serialization=zip_format)
    for fmt in ("torchscript", None):
        with pytest.raises(TeacherLoadError, match="pickle"):
            load_teacher(_spec("teacher.pt", fmt), evil, CPU)
    assert not marker.exists()


def test_hf_archive_outside_the_text_pipeline_asks_for_a_text_student(tmp_path: Path) -> None:
    # The text pipeline unpacks and checks hf archives (tests/akd_core/test_text_teacher.py).
    path = tmp_path / "bert.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bert/config.json", "{}")
    with pytest.raises(TeacherLoadError, match="'bert' or 'shrink-teacher'") as err:
        load_teacher(_spec("bert.zip", "hf"), path, CPU)
    assert err.value.field == "student.arch"


def test_check_teacher_reports_both_class_counts(onnx_file: Path) -> None:
    teacher = load_teacher_in_process(_spec("teacher.onnx", "onnx"), onnx_file, CPU)
    check_teacher(teacher, SHAPE, CLASSES)
    with pytest.raises(TeacherLoadError) as err:
        check_teacher(teacher, SHAPE, 10)
    assert "3 classes" in err.value.message and "10 classes" in err.value.message


def test_check_teacher_reports_fed_and_declared_shapes(onnx_file: Path) -> None:
    teacher = load_teacher_in_process(_spec("teacher.onnx", "onnx"), onnx_file, CPU)
    with pytest.raises(TeacherLoadError) as err:
        check_teacher(teacher, (3, 32, 32), CLASSES)
    assert "(2, 3, 32, 32)" in err.value.message
    assert "(batch, 1, 8, 8)" in err.value.message


def test_check_teacher_reports_the_shape_a_torch_teacher_rejected(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    path = tmp_path / "teacher.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    teacher = load_teacher_in_process(_spec("teacher.pt", "torchscript"), path, CPU)
    with pytest.raises(TeacherLoadError, match=r"rejected input of shape \(2, 20\)"):
        check_teacher(teacher, (20,), CLASSES)


def test_torchscript_zip_bomb_is_refused_before_torch_inflates_it(tmp_path: Path) -> None:
    path = tmp_path / "teacher.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("model/code/__torch__.py", b"")
        zf.writestr("model/data/0", b"\0" * (20 * 1024 * 1024))
    with pytest.raises(TeacherLoadError, match="was refused") as err:
        load_teacher(_spec("teacher.pt", "torchscript"), path, CPU)
    assert err.value.field == "teacher.source"
