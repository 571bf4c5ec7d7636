"""The TorchScript allow-list: hostile graphs are refused before they run; real teachers pass."""

# No `from __future__ import annotations`: torch.jit.ignore needs real annotation objects.

from pathlib import Path

import pytest
import torch
from torch import nn

from akd_core.errors import TeacherLoadError
from akd_core.models import build_model
from akd_core.spec import TeacherSpec
from akd_core.teachers import load_teacher, load_teacher_in_process
from akd_core.torchscript_check import DENIED_ATEN, check_scripted_module

torch.set_num_threads(1)
CPU = torch.device("cpu")
SPEC = TeacherSpec(source="file:teacher.pt", format="torchscript")


class FileReader(nn.Module):
    """forward maps a file of its choosing into a tensor (shared=True creates it if missing)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_file(self.path, shared=True, size=8) + x.sum()


class Printer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("teacher says", x.shape)
        return x


def _helper_that_warns(x: torch.Tensor) -> torch.Tensor:
    torch._assert(x.dim() > 0, "needs a batch")
    torch.ops.aten.warn("from a called function")
    return x


class CallsAFunction(nn.Module):
    """The forbidden op hides in a called function of a submodule's extra method."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.scaled(x)


class Inner(nn.Module):
    @torch.jit.export
    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        return _helper_that_warns(x) * 2


class WritesWhileLoading(nn.Module):
    """__setstate__ runs inside torch.jit.load: here it creates a file of its choosing."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.buf = torch.zeros(8)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.path, self.training = state[0], state[1]
        self.buf = torch.from_file(self.path, shared=True, size=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.buf.sum()


@torch.jit.ignore
def _python_side(x: torch.Tensor) -> torch.Tensor:
    return x


class CallsPython(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _python_side(x)


class ReturnsDict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x), "features": x}


class ReturnsTuple(ReturnsDict):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self.fc(x), x


def _save(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_a_forward_that_reads_a_file_is_refused_and_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "would-be-created"
    path = _save(FileReader(str(target)), tmp_path / "teacher.pt")
    with pytest.raises(TeacherLoadError) as err:
        load_teacher_in_process(SPEC, path, CPU)
    assert "aten::from_file (in forward)" in err.value.message
    assert "accepted are aten:: tensor operations" in err.value.message
    assert err.value.field == "teacher.source"
    assert not target.exists()  # the graph never ran: from_file(shared=True) would create it


def test_print_is_refused(tmp_path: Path) -> None:
    path = _save(Printer(), tmp_path / "teacher.pt")
    with pytest.raises(TeacherLoadError, match=r"prim::Print \(in forward\)"):
        load_teacher_in_process(SPEC, path, CPU)


class NoGradInside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.fc(x)


def test_no_grad_blocks_are_refused_with_the_way_out(tmp_path: Path) -> None:
    # Its __enter__/__exit__ code travels in the archive as text an attacker could rewrite.
    path = _save(NoGradInside(), tmp_path / "teacher.pt")
    with pytest.raises(TeacherLoadError) as err:
        load_teacher_in_process(SPEC, path, CPU)
    assert "prim::Enter (in forward)" in err.value.message
    assert "torch.jit.trace records only tensor operations" in err.value.message
    traced = tmp_path / "traced.pt"
    torch.jit.save(torch.jit.trace(NoGradInside().eval(), torch.zeros(2, 4)), str(traced))
    assert load_teacher_in_process(SPEC, traced, CPU).predict(torch.zeros(2, 4)).shape == (2, 3)


def test_ops_in_called_functions_and_submodule_methods_are_found(tmp_path: Path) -> None:
    path = _save(CallsAFunction(), tmp_path / "teacher.pt")
    with pytest.raises(TeacherLoadError) as err:
        load_teacher_in_process(SPEC, path, CPU)
    assert "aten::warn (in forward, inner.scaled)" in err.value.message


def test_setstate_is_refused_before_torch_loads_the_archive(tmp_path: Path) -> None:
    target = tmp_path / "written-at-load"
    path = _save(WritesWhileLoading(str(target)), tmp_path / "teacher.pt")
    assert not target.exists()
    with pytest.raises(TeacherLoadError, match="defines __setstate__") as err:
        load_teacher(SPEC, path, CPU)  # refused in this process, before any child starts
    assert "runs while loading" in err.value.message
    assert not target.exists()
    # The payload is real: loading the archive unchecked runs it.
    torch.jit.load(str(path))
    assert target.exists()


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_custom_classes_are_refused() -> None:
    scripted = torch.jit.script(torch.ao.nn.quantized.Linear(4, 2))
    with pytest.raises(TeacherLoadError) as err:
        check_scripted_module(scripted)
    assert "custom class __torch__.torch.classes.quantized.LinearPackedParamsBase" in str(err.value)


def test_python_ops_are_refused() -> None:
    with pytest.raises(TeacherLoadError, match=r"prim::PythonOp \(in forward\)"):
        check_scripted_module(torch.jit.script(CallsPython()))


@pytest.mark.parametrize(
    ("arch", "shape"), [("resnet8", (3, 16, 16)), ("cnn-tiny", (1, 8, 8)), ("mlp", (12,))]
)
@pytest.mark.parametrize("how", ["script", "trace"])
def test_registry_models_pass_scripted_and_traced(
    tmp_path: Path, arch: str, shape: tuple[int, ...], how: str
) -> None:
    model = build_model(arch, shape, 5).eval()
    x = torch.randn(3, *shape)
    scripted = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x)
    path = tmp_path / "teacher.pt"
    torch.jit.save(scripted, str(path))
    teacher = load_teacher_in_process(SPEC, path, CPU)
    with torch.no_grad():
        torch.testing.assert_close(teacher.predict(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [ReturnsDict, ReturnsTuple])
def test_models_returning_a_dict_or_tuple_pass(tmp_path: Path, cls: type[nn.Module]) -> None:
    model = cls().eval()
    path = _save(model, tmp_path / "teacher.pt")
    x = torch.randn(2, 4)
    teacher = load_teacher_in_process(SPEC, path, CPU)
    with torch.no_grad():
        torch.testing.assert_close(teacher.predict(x), model.fc(x))


def test_every_aten_op_that_names_a_file_is_denied() -> None:
    # Guards torch upgrades: an op that takes a file name must be on the deny list.
    schemas = torch._C._jit_get_all_schemas()
    by_file = {s.name for s in schemas if s.name.startswith("aten::") and "filename" in str(s)}
    assert by_file and by_file <= DENIED_ATEN, by_file - DENIED_ATEN
    assert {"aten::from_file", "aten::save", "aten::warn", "aten::_print"} <= DENIED_ATEN
