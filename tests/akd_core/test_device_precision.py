"""Mixed precision by the job's GPU, resume across a change of precision, deterministic mode,
and validation evaluated like test; checked on this CPU host with torch.cuda stand-ins."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

from akd_core import arm_resume
from akd_core.device import amp_dtype_for, set_deterministic
from akd_core.errors import JobCancelled
from akd_core.events import Hooks
from akd_core.models import build_model
from akd_core.spec import parse_spec
from akd_core.trainer import ArmTrainer, Progress
from tests.akd_core import trainer_support as ts

GPU1 = torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [((7, 0), torch.float16), ((7, 5), torch.float16), ((8, 0), torch.bfloat16),
     ((8, 9), torch.bfloat16), ((9, 0), torch.bfloat16)],
)  # fmt: skip
def test_bf16_only_from_compute_capability_8_of_the_jobs_own_card(monkeypatch, capability, dtype):
    asked: list[torch.device] = []

    def capability_of(dev: torch.device) -> tuple[int, int]:
        asked.append(dev)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    # A V100/T4 "supports" bf16 by emulation: that answer must not decide.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype_for(GPU1, enabled=True) is dtype
    assert asked == [GPU1]
    assert amp_dtype_for(GPU1, enabled=False) is None


class _GrowingCpuScaler(torch.amp.GradScaler):
    """An fp16 loss scaler that works on this CPU-only host and doubles its scale every step."""

    def __init__(self, device: str, enabled: bool) -> None:
        super().__init__("cpu", init_scale=2.0, growth_interval=1, enabled=enabled)


def _trainer(out, hooks, amp_dtype):
    with warnings.catch_warnings():  # float16 autocast on CPU warns about its scaler
        warnings.simplefilter("ignore", UserWarning)
        return ts.annealing_trainer(out, hooks, amp_dtype=amp_dtype)


def test_a_checkpoint_without_loss_scale_resumes_in_fp16_with_a_fresh_scale(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(torch.amp, "GradScaler", _GrowingCpuScaler)
    with pytest.raises(JobCancelled):  # 2 epochs of 2 steps, written with the scaler off
        _trainer(tmp_path, Hooks(should_cancel=ts.StopAfter(5)), None).run(resume=False)
    resumed = _trainer(tmp_path, Hooks(), torch.float16)
    with caplog.at_level(logging.INFO, logger="akd_core.device"):
        result = resumed.run(resume=True)  # used to raise: GradScaler.load_state_dict({})
    assert len(result.history) == 4
    assert resumed.scaler.get_scale() == 2.0 * 2**4  # fresh at 2.0, then the 4 steps left
    assert "resuming in fp16 with a fresh loss scale" in caplog.text


def test_an_fp16_checkpoint_resumes_without_loss_scaling(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.amp, "GradScaler", _GrowingCpuScaler)
    with pytest.raises(JobCancelled):
        _trainer(tmp_path, Hooks(should_cancel=ts.StopAfter(5)), torch.float16).run(resume=False)
    resumed = _trainer(tmp_path, Hooks(), None)
    assert len(resumed.run(resume=True).history) == 4
    assert not resumed.scaler.is_enabled()


def test_the_trainer_saves_and_restores_the_rng_of_its_own_device(tmp_path, monkeypatch):
    seen: list[object] = []
    real_state, real_restore = arm_resume.rng_state, arm_resume.restore_rng
    monkeypatch.setattr(arm_resume, "rng_state", lambda g, d: seen.append(d) or real_state(g, d))
    monkeypatch.setattr(
        arm_resume, "restore_rng", lambda s, g, d: seen.append(d) or real_restore(s, g, d)
    )
    with pytest.raises(JobCancelled):
        _trainer(tmp_path, Hooks(should_cancel=ts.StopAfter(3)), None).run(resume=False)
    _trainer(tmp_path, Hooks(), None).run(resume=True)
    assert seen and all(d == torch.device("cpu") for d in seen)


def _eval_dtypes(tmp_path, amp_dtype):
    """{training?: dtypes} of the student's logits at every forward pass."""
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}
    model.register_forward_hook(lambda m, _i, out: seen[m.training].add(out.dtype))
    spec = ts.arm_spec(annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})
    ArmTrainer("student", spec, model, ts.synthetic_train_data(), torch.device("cpu"), tmp_path,
               Hooks(), Progress(1), amp_dtype=amp_dtype).run(resume=False)  # fmt: skip
    return seen


def test_validation_is_evaluated_in_fp32_like_test_while_training_autocasts(tmp_path):
    seen = _eval_dtypes(tmp_path, torch.bfloat16)
    assert seen == {True: {torch.bfloat16}, False: {torch.float32}}


def test_deterministic_mode_is_off_by_default_and_switches_both_ways():
    spec = parse_spec({"teacher": {"source": "file:t.onnx"}, "student": {"arch": "mlp"},
                       "dataset": {"source": "builtin:digits"}})  # fmt: skip
    assert spec.deterministic is False
    try:
        set_deterministic(True)
        assert torch.backends.cudnn.deterministic and torch.are_deterministic_algorithms_enabled()
        # ResNet students' AdaptiveAvgPool2d has no deterministic CUDA backward: warn, not fail
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        set_deterministic(False)  # the next job in this worker process is not slowed
        assert not torch.backends.cudnn.deterministic
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(False)


def test_a_job_applies_its_deterministic_setting_before_training(monkeypatch, tmp_path):
    from akd_core import pipeline

    asked: list[bool] = []
    monkeypatch.setattr(pipeline, "set_deterministic", asked.append)
    kernels: list[tuple[str, bool]] = []
    monkeypatch.setattr(pipeline, "set_fast_kernels", lambda d, det: kernels.append((d.type, det)))
    ts.install_fixed_teacher(monkeypatch)
    teacher = ts.write_teacher(tmp_path / "t.npy")
    data = ts.write_dataset(tmp_path / "d.npz")
    ts.skip_outputs(monkeypatch)
    spec = ts.job_spec(teacher, data, deterministic=True,
                       annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})  # fmt: skip
    pipeline.run_job(spec, tmp_path / "out", device="cpu")
    assert asked == [True]
    assert kernels == [("cpu", True)]  # no autotuner for a deterministic job


@pytest.fixture
def kernel_flags():
    """Restore torch's global kernel switches after a test flips them."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark)  # fmt: skip
    yield
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.benchmark) = saved  # fmt: skip


@pytest.mark.parametrize(("deterministic", "benchmark"), [(False, True), (True, False)])
def test_cuda_jobs_use_tf32_and_the_cudnn_autotuner_unless_deterministic(
    kernel_flags, deterministic, benchmark
):
    from akd_core.device import set_fast_kernels

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = not benchmark
    set_fast_kernels(torch.device("cuda"), deterministic)  # switches only: no GPU needed
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark is benchmark


def test_cpu_jobs_leave_the_kernel_switches_alone(kernel_flags):
    from akd_core.device import set_fast_kernels

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.benchmark = False
    set_fast_kernels(torch.device("cpu"), False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
