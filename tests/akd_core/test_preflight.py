"""Pre-flight: a bad spec, student or memory plan fails in seconds, before any data is read."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from akd_core import pipeline, preflight
from akd_core.cli import main as distill
from akd_core.errors import SpecError
from akd_core.exit_codes import EXIT_USAGE
from akd_core.spec import parse_spec
from tests.akd_core.trainer_support import install_fixed_teacher, write_dataset, write_teacher


class Spy:
    """Stands in for a function that must not be reached; records any call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise AssertionError("pre-flight should have stopped the run before this call")


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, Spy]:
    """The data loader and the teacher loader of the pipeline, replaced by spies."""
    found = {"load_dataset": Spy(), "load_teacher": Spy()}
    for name, spy in found.items():
        monkeypatch.setattr(pipeline, name, spy)
    return found


@pytest.fixture(autouse=True)
def fresh_export_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no export check remembered from earlier jobs in this process."""
    monkeypatch.setattr(preflight, "_EXPORT_PASSED", set())


def test_a_passed_export_check_is_not_repeated_in_the_process(monkeypatch):
    import akd_core.export

    real, calls = akd_core.export.export_onnx, []
    monkeypatch.setattr(
        akd_core.export, "export_onnx", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    spec = parse_spec(json.loads(_spec_json()))
    preflight.check_student_export(spec, (1, 8, 8), 10)
    preflight.check_student_export(spec, (1, 8, 8), 10)  # a second job, the same student
    assert len(calls) == 1
    other = parse_spec(json.loads(_spec_json(export={"opset": 17})))
    preflight.check_student_export(other, (1, 8, 8), 10)  # another opset is checked again
    preflight.check_student_export(spec, (1, 8, 8), 4)  # and another class count
    assert len(calls) == 3


def _spec_file(tmp_path: Path, **over: Any) -> Path:
    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(b"never read: pre-flight fails first")
    spec: dict[str, Any] = {
        "teacher": {"source": f"file:{teacher}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        "device": "cpu",
    }
    spec.update(over)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _cli(spec: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = distill([str(spec), "--out", str(out), "--quiet"])
    return code, capsys.readouterr().err


def test_misspelt_arch_fails_in_seconds_without_reading_data(tmp_path, spies, capsys):
    spec = _spec_file(tmp_path, student={"arch": "resnt8"})
    t0 = time.perf_counter()
    code, err = _cli(spec, tmp_path / "out", capsys)
    elapsed = time.perf_counter() - t0
    assert code == EXIT_USAGE
    assert "student.arch: unknown architecture 'resnt8'; available: resnet8" in err
    assert spies["load_dataset"].calls == 0 and spies["load_teacher"].calls == 0
    assert elapsed < 3.0


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"student": {"arch": "cnn", "options": {"width": 0}}}, "student.options.width", "1 to"),
        ({"student": {"arch": "mlp", "options": {"depth": 3}}}, "student.options", "hidden"),
        ({"teacher": {"source": "file:x", "arch": "resnet9"}}, "teacher.arch", "resnet8"),
        ({"dataset": {"source": "builtin:mnist"}}, "dataset.source", "digits"),
    ],
)
def test_bad_spec_fields_fail_before_data(tmp_path, spies, capsys, over, field, words):
    if "teacher" in over:  # a safetensors teacher names its arch; keep the file real
        over["teacher"]["source"] = f"file:{tmp_path / 'teacher.onnx'}"
        over["teacher"]["format"] = "safetensors"
    code, err = _cli(_spec_file(tmp_path, **over), tmp_path / "out", capsys)
    assert code == EXIT_USAGE
    assert err.startswith(f"error: {field}: ") and words in err, err
    assert spies["load_dataset"].calls == 0


def test_student_that_cannot_take_the_samples_fails_before_data(tmp_path, spies, capsys):
    """The CSV header tells the samples are features: an image-only student is refused early."""
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,label\n" + "".join(f"{i},{i},{i},{i % 2}\n" for i in range(20)))
    spec = _spec_file(tmp_path, student={"arch": "resnet8"}, dataset={"source": f"file:{csv}"})
    code, err = _cli(spec, tmp_path / "out", capsys)
    assert code == EXIT_USAGE
    assert err.startswith("error: student.arch: architecture 'resnet8' accepts image input"), err
    assert "architectures that accept features: mlp" in err
    assert spies["load_dataset"].calls == 0


def test_export_failure_names_the_opset(tmp_path, spies, capsys, monkeypatch):
    import akd_core.export

    def refuse(*args: Any, **kwargs: Any) -> Path:
        raise RuntimeError("Unsupported: aten::gelu at opset 13")

    monkeypatch.setattr(akd_core.export, "export_onnx", refuse)
    code, err = _cli(_spec_file(tmp_path, export={"opset": 13}), tmp_path / "out", capsys)
    assert code == EXIT_USAGE
    assert "error: export.opset: the untrained student 'mlp' could not be exported" in err
    assert "opset 13" in err and "aten::gelu" in err
    assert spies["load_dataset"].calls == 0


def test_student_with_wrong_output_size_is_refused(monkeypatch):
    import torch

    import akd_core.models.registry as registry

    real = registry.build_model
    monkeypatch.setattr(registry, "build_model", lambda a, s, k, o: real(a, s, k + 1, o))
    spec = parse_spec(json.loads(_spec_json()))
    with pytest.raises(SpecError, match=r"expected \(2, 10\) finite logits") as info:
        preflight.check_student_export(spec, (1, 8, 8), 10)
    assert info.value.field == "export.opset"
    monkeypatch.setattr(registry, "build_model", real)
    torch.manual_seed(0)
    preflight.check_student_export(spec, (1, 8, 8), 10)  # the real student passes


def _spec_json(**over: Any) -> str:
    spec = {
        "teacher": {"source": "file:t.onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        **over,
    }
    return json.dumps(spec)


def test_memory_over_the_device_names_batch_size(tmp_path, capsys, monkeypatch):
    """The estimate runs on the npz headers, before the data or the teacher is loaded."""
    data, teacher = write_dataset(tmp_path / "d.npz"), write_teacher(tmp_path / "t.npy")
    loaded = install_fixed_teacher(monkeypatch)
    monkeypatch.setattr(preflight, "available_memory", lambda device, resident=0: 2 * 1024**2)
    spec = _spec_file(
        tmp_path,
        teacher={"source": f"file:{teacher}", "format": "onnx"},
        dataset={"source": f"file:{data}", "format": "npz"},
        student={"arch": "cnn", "options": {"width": 64}},
        optimizer={"batch_size": 4096},
    )
    code, err = _cli(spec, tmp_path / "out", capsys)
    assert code == EXIT_USAGE
    assert err.startswith("error: optimizer.batch_size: the run needs an estimated"), err
    assert "batch activations" in err and "optimizer.batch_size 4096" in err
    assert "student.options" in err and "free on cpu" in err
    assert loaded == []  # the teacher was never loaded


def test_memory_estimate_parts():
    spec = parse_spec(json.loads(_spec_json(optimizer={"batch_size": 32, "name": "sgd"})))
    est = preflight.estimate_memory(spec, (1, 8, 8), 10, samples=1000, teacher_bytes=5000)
    params = 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10  # the default mlp (128, 64)
    assert (est.student, est.gradients, est.optimizer) == (4 * params, 4 * params, 4 * params)
    assert est.data == 1000 * (4 * 64 + 8) + 1000 * 10 * 4
    assert est.activations == 2 * 4 * 32 * (64 + 2 * 128 + 2 * 64 + 10)
    assert est.teacher == 5000
    adamw = parse_spec(json.loads(_spec_json()))
    assert preflight.estimate_memory(adamw, (1, 8, 8), 10, 1000, 0).optimizer == 8 * params


def test_weights_dominating_name_the_student_options():
    spec = parse_spec(
        json.loads(_spec_json(student={"arch": "mlp", "options": {"hidden": [4096]}}))
    )
    est = preflight.estimate_memory(spec, (3, 32, 32), 10, samples=10, teacher_bytes=0)
    with pytest.raises(SpecError) as info:
        preflight.check_memory(est, est.total // 2, "cuda:0")
    assert info.value.field == "student.options"
    assert "choose a smaller student (student.arch, student.options)" in info.value.message
    preflight.check_memory(est, est.total * 2, "cuda:0")  # enough memory: no error


def _measured_activations(arch: str, options: dict, shape: tuple[int, ...], k: int) -> int:
    """Values kept by a training forward pass: the outputs of every leaf module."""
    import torch

    from akd_core.models import build_model

    net = build_model(arch, shape, k, options).train()
    seen: list[int] = []
    for m in net.modules():
        if not list(m.children()):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.numel()))
    net(torch.zeros((1, *shape)))
    return sum(seen)


@pytest.mark.parametrize(
    ("arch", "options", "shape"),
    [
        ("mlp", {}, (1, 8, 8)),
        ("mlp", {"hidden": [256, 256, 32]}, (40,)),
        ("cnn-tiny", {}, (3, 32, 32)),
        ("cnn", {"width": 8}, (1, 28, 28)),
        ("resnet8", {}, (3, 32, 32)),
        ("resnet20", {"width": 8}, (3, 16, 16)),
    ],
)
def test_activation_estimate_is_close_to_the_built_model(arch, options, shape):
    estimated = preflight.activation_elements(arch, options, shape, 10)
    measured = _measured_activations(arch, options, shape, 10)
    assert 0.7 * measured <= estimated <= 1.5 * measured, (estimated, measured)


def test_near_perfect_teacher_is_flagged():
    assert preflight.teacher_test_warning(0.994, 1000) is None
    text = preflight.teacher_test_warning(1.0, 360)
    assert text is not None and "100.00% on the test split (360 samples)" in text
    assert "supply a test split the teacher never saw" in text
    assert preflight.teacher_test_warning(1.0, 0) is None


@pytest.mark.parametrize(
    ("student", "field"),
    [
        ({"arch": "cnn", "options": {"width": 0}}, "student.options.width"),
        ({"arch": "mlp", "options": {"hidden": "wide"}}, "student.options.hidden"),
        ({"arch": "resnt8"}, "student.arch"),
    ],
)
def test_check_spec_refuses_option_values_without_data(student, field):
    with pytest.raises(SpecError) as info:
        preflight.check_spec(parse_spec(json.loads(_spec_json(student=student))))
    assert info.value.field == field


def test_check_spec_and_the_estimate_import_no_torch():
    """The API runs them at POST /jobs, where torch is never imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from akd_core import preflight\n"
        "from akd_core.spec import parse_spec\n"
        f"spec = parse_spec({_spec_json()!r})\n"
        "preflight.check_spec(spec)\n"
        "preflight.estimate_memory(spec, (1, 8, 8), 10, 100, 0)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_teacher_perfect_on_the_test_split_is_flagged_in_report_and_cli(
    tmp_path, capsys, monkeypatch
):
    """The synthetic data is labelled by the fixed teacher: it scores 100% on the test split."""
    data, teacher = write_dataset(tmp_path / "d.npz"), write_teacher(tmp_path / "t.npy")
    install_fixed_teacher(monkeypatch)
    spec = _spec_file(
        tmp_path,
        teacher={"source": f"file:{teacher}", "format": "onnx"},
        dataset={"source": f"file:{data}", "format": "npz"},
        student={"arch": "mlp", "options": {"hidden": [8]}},
        annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1},
    )
    code = distill([str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["teacher"]["accuracy"] == 1.0
    [warning] = report["warnings"]
    assert "100.00% on the test split (18 samples)" in warning
    assert f"Warning: {warning}" in out
    assert f"- Warning: {warning}" in (tmp_path / "out" / "report.md").read_text()


def test_a_teacher_with_the_wrong_class_count_fails_through_the_cli_before_training(
    tmp_path, capsys, monkeypatch
):
    import numpy as np

    data, teacher = write_dataset(tmp_path / "d.npz"), tmp_path / "t.npy"
    np.save(teacher, np.zeros((64, 5), np.float32))  # 5 logits; the data has 3 classes
    install_fixed_teacher(monkeypatch)
    monkeypatch.setattr(pipeline, "ArmTrainer", Spy())
    spec = _spec_file(
        tmp_path,
        teacher={"source": f"file:{teacher}", "format": "onnx"},
        dataset={"source": f"file:{data}", "format": "npz"},
    )
    code, err = _cli(spec, tmp_path / "out", capsys)
    assert code == EXIT_USAGE
    assert "error: teacher.source: the teacher outputs 5 classes but the dataset has 3" in err


def test_akd_distill_refuses_a_misspelt_arch_before_importing_torch(tmp_path):
    """A real process: the spec is checked before the pipeline (and torch) is imported."""
    import subprocess
    import sys

    spec = _spec_file(tmp_path, student={"arch": "resnt8"})
    code = (
        "import sys\n"
        "from akd_core.cli import main\n"
        f"code = main([{str(spec)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet'])\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == EXIT_USAGE
    assert "student.arch: unknown architecture 'resnt8'; available: resnet8" in proc.stderr
    assert proc.stdout == "torch imported: False\n"
    assert elapsed < 10.0  # typically 0.3 s; generous for a loaded machine
    assert not (tmp_path / "out").exists()  # nothing written
