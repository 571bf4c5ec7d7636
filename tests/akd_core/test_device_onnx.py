"""ONNX teachers on the job's own GPU: the CUDA provider is opened on that card's device_id."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from akd_core import onnx_classifier, teachers
from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.models.onnx_runner import execution_provider, make_session, session_providers
from akd_core.spec import TeacherSpec

SHAPE = (4,)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model("mlp", SHAPE, 3)
    return export_onnx(model, SHAPE, tmp_path_factory.mktemp("t") / "teacher.onnx", {})


def test_the_cuda_provider_opens_on_the_jobs_card_when_installed(monkeypatch):
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert session_providers(True, 3) == [
        ("CUDAExecutionProvider", {"device_id": 3}),
        "CPUExecutionProvider",
    ]
    assert session_providers(False, 3) == ["CPUExecutionProvider"]


def test_without_onnxruntime_gpu_a_cuda_job_runs_its_teacher_on_cpu_and_says_so(onnx_file):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    assert session_providers(True, 0) == ["CPUExecutionProvider"]
    assert execution_provider(make_session(onnx_file, use_cuda=True)) == "CPUExecutionProvider"


def test_an_onnx_teacher_on_cuda_1_asks_for_device_id_1(onnx_file, monkeypatch):
    asked: list[tuple[bool, int]] = []

    def recording(path: Path, use_cuda: bool = False, device_id: int = 0) -> ort.InferenceSession:
        asked.append((use_cuda, device_id))
        return make_session(path)  # this host has no GPU: run it on the CPU

    monkeypatch.setattr(onnx_classifier, "make_session", recording)
    spec = TeacherSpec(source="file:t.onnx")
    # cuda:1, then "cuda" (a pinned worker's one card), then the CPU
    for device in (torch.device("cuda", 1), torch.device("cuda"), torch.device("cpu")):
        teachers.open_teacher("onnx", onnx_file, "f", device, spec, None, None)
    assert asked == [(True, 1), (True, 0), (False, 0)]


def test_the_report_names_the_provider_that_ran_the_sandboxed_onnx_teacher(onnx_file):
    from akd_core.report import teacher_facts
    from akd_core.spec import TeacherSpec

    teacher = teachers.load_teacher(
        TeacherSpec(source="file:t.onnx"), onnx_file, torch.device("cpu")
    )
    try:
        facts = teacher_facts(teacher, onnx_file)
    finally:
        teacher.release()
    assert facts["execution_provider"] == "CPUExecutionProvider"  # no GPU here


def test_a_torch_teacher_reports_no_onnx_provider(tmp_path):
    from akd_core.report import teacher_facts

    model = torch.jit.script(build_model("mlp", SHAPE, 3).eval())
    path = tmp_path / "t.pt"
    model.save(str(path))
    teacher = teachers.load_teacher_in_process(
        teachers.TeacherSpec(source="file:t.pt", format="torchscript"), path, torch.device("cpu")
    )
    assert teacher_facts(teacher, path)["execution_provider"] is None
