"""An ONNX teacher's process never loads torch; torch teachers still get it; spares per runtime.

What a process has loaded is read from outside, in /proc/<pid>/maps (the child is untrusted,
so nothing it says about itself is taken as proof): torch's shared libraries live under a
`torch/` folder, and a process that imported torch maps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.sandbox import process
from akd_core.sandbox.proxy import SandboxedTeacher, SandboxPolicy
from akd_core.spec import TeacherSpec
from akd_core.teachers import Teacher, load_teacher, load_teacher_in_process

CPU = torch.device("cpu")
SHAPE, CLASSES = (1, 8, 8), 3
ONE_OFF = SandboxPolicy(keep_warm=False)


def _maps_torch(teacher: Teacher) -> bool:
    """Whether the teacher's process has torch's libraries mapped (read by the parent)."""
    assert isinstance(teacher, SandboxedTeacher) and teacher._child is not None
    maps = Path(f"/proc/{teacher._child.proc.pid}/maps").read_text()
    return "/torch/" in maps


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("teachers")
    torch.manual_seed(0)
    model = build_model("cnn-tiny", SHAPE, CLASSES).eval()
    torch.jit.save(torch.jit.script(model), str(d / "teacher.pt"))
    return {
        "onnx": export_onnx(model, SHAPE, d / "teacher.onnx", {}),
        "torchscript": d / "teacher.pt",
    }


@pytest.fixture
def no_spares() -> Iterator[None]:
    process._Spare.stop()
    yield
    process._Spare.stop()  # no idle teacher process outlives the test


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_only_a_torch_teachers_process_loads_torch(files: dict[str, Path], fmt: str) -> None:
    spec = TeacherSpec(source="file:teacher", format=fmt)  # type: ignore[arg-type]
    x = torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(1))
    teacher = load_teacher(spec, files[fmt], CPU, sandbox=ONE_OFF)
    try:
        # The callers' view is unchanged: torch in, torch out, the in-process logits.
        local = load_teacher_in_process(spec, files[fmt], CPU)
        torch.testing.assert_close(teacher.predict(x), local.predict(x), atol=1e-6, rtol=0)
        if fmt == "onnx":  # timed in the child with onnxruntime, still without torch
            latency = teacher.latency(SHAPE)  # type: ignore[attr-defined]
            assert latency is not None and latency["batch1"]["median_ms"] > 0
        assert _maps_torch(teacher) == (fmt == "torchscript")
    finally:
        teacher.release()


def _text_teacher_folder(dest: Path) -> Path:
    """An ONNX text classifier: logits (B, 2) = [sum of input_ids, -sum] over the mask."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "L"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "L"])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 2])
    nodes = [
        helper.make_node("Mul", ["input_ids", "attention_mask"], ["kept"]),
        helper.make_node("Cast", ["kept"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["f", "axes"], ["s"], keepdims=1),
        helper.make_node("MatMul", ["s", "w"], ["logits"]),
    ]
    inits = [
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [1.0, -1.0]),
    ]
    graph = helper.make_graph(nodes, "text", [ids, mask], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    dest.mkdir()
    onnx.save(model, str(dest / "model.onnx"))
    (dest / "tokenizer.json").write_text("{}")  # the folder check wants the tokenizer beside it
    return dest


def test_an_onnx_text_teachers_process_does_not_load_torch_either(tmp_path: Path) -> None:
    folder = _text_teacher_folder(tmp_path / "text")
    teacher = load_teacher(
        TeacherSpec(source="file:x", format="onnx"), folder, CPU, sandbox=ONE_OFF
    )
    try:
        x = np.array([[[2, 9, 3, 0], [1, 1, 1, 0]], [[5, 0, 0, 0], [1, 0, 0, 0]]], np.int64)
        np.testing.assert_array_equal(teacher.logits_for(x), [[14, -14], [5, -5]])
        torch.testing.assert_close(
            teacher.predict(torch.from_numpy(x)), torch.tensor([[14.0, -14], [5, -5]])
        )
        assert teacher.format == "onnx" and not _maps_torch(teacher)
    finally:
        teacher.release()


def test_each_runtime_keeps_its_own_spare(files: dict[str, Path], no_spares: None) -> None:
    onnx_spec = TeacherSpec(source="file:teacher", format="onnx")
    first = load_teacher(onnx_spec, files["onnx"], CPU)  # leaves an ONNX spare behind
    spare = process._Spare.children["onnx"]
    scripted = load_teacher(
        TeacherSpec(source="file:t", format="torchscript"), files["torchscript"], CPU
    )
    second = load_teacher(onnx_spec, files["onnx"], CPU)  # takes the ONNX spare, not torch's
    try:
        assert isinstance(second, SandboxedTeacher) and second._child is spare
        assert set(process._Spare.children) == {"onnx", "torch"}
        x = torch.zeros(2, *SHAPE)
        torch.testing.assert_close(second.predict(x), first.predict(x))
        assert scripted.predict(x).shape == (2, CLASSES)
        assert not _maps_torch(first) and not _maps_torch(second) and _maps_torch(scripted)
    finally:
        for teacher in (first, scripted, second):
            teacher.release()
