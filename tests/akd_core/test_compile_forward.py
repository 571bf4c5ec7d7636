"""optimizer.compile: off, on, or auto (timed on CUDA); checkpoints and export unaffected."""

from __future__ import annotations

import pytest
import torch

from akd_core import compile_forward
from akd_core.checkpoint import checkpoint_path, load_checkpoint
from akd_core.compile_forward import choose_forward, time_steps
from akd_core.events import Hooks
from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.report import ArmSummary
from akd_core.trainer import ArmTrainer, Progress
from tests.akd_core import trainer_support as ts

CUDA = torch.device("cuda")


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", (6,), 3, {"hidden": [8]})


def _sample() -> torch.Tensor:
    return torch.randn(4, 6)


def test_off_trains_the_eager_module_and_on_a_compiled_twin():
    model = _mlp()
    fwd, choice = choose_forward(model, "off", torch.device("cpu"), _sample)
    assert fwd is model and not choice.compiled
    fwd, choice = choose_forward(model, "on", torch.device("cpu"), _sample)
    assert isinstance(fwd, torch._dynamo.eval_frame.OptimizedModule) and choice.compiled
    assert fwd._orig_mod is model  # the same parameters: training one trains the other


def test_auto_stays_eager_on_cpu_without_timing(monkeypatch):
    monkeypatch.setattr(compile_forward, "time_steps", _never_timed)
    model = _mlp()
    fwd, choice = choose_forward(model, "auto", torch.device("cpu"), _sample)
    assert fwd is model and not choice.compiled and "CPU" in choice.reason


def _never_timed(*_args, **_kwargs):
    raise AssertionError("auto must not time steps on CPU")


@pytest.mark.parametrize(("eager", "compiled", "keeps"), [(10.0, 6.0, True), (6.0, 10.0, False)])
def test_auto_on_cuda_keeps_the_faster_as_measured(monkeypatch, eager, compiled, keeps):
    model = _mlp()

    def timed(m, forward, *_args, **_kwargs):
        return eager if forward is m else compiled

    monkeypatch.setattr(compile_forward, "time_steps", timed)
    fwd, choice = choose_forward(model, "auto", CUDA, _sample)
    assert choice.compiled is keeps and (fwd is not model) is keeps
    assert (choice.eager_ms, choice.compiled_ms) == (eager, compiled)
    assert choice.to_dict()["compiled"] is keeps  # what report.json's student.compile holds


def test_auto_falls_back_to_eager_when_compiling_fails(monkeypatch):
    model = _mlp()

    def timed(m, forward, *_args, **_kwargs):
        if forward is not m:
            raise RuntimeError("inductor: no C++ compiler")
        return 5.0

    monkeypatch.setattr(compile_forward, "time_steps", timed)
    fwd, choice = choose_forward(model, "auto", CUDA, _sample)
    assert fwd is model and not choice.compiled and "RuntimeError" in choice.reason


def test_timing_leaves_no_trace_on_the_model():
    """Timed steps drop their gradients and restore BatchNorm statistics and the RNG."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xb = torch.randn(8, 6) + 3.0
    rng = torch.get_rng_state()
    ms = time_steps(model, model, xb, torch.device("cpu"), steps=2)
    assert ms > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def _train(tmp_path, mode: str):
    spec = ts.arm_spec(
        annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1},
        optimizer={"compile": mode},
    )
    model = _mlp()
    t = ArmTrainer("annealing", spec, model, ts.synthetic_train_data(), torch.device("cpu"),
                   tmp_path / mode, Hooks(), Progress(2))  # fmt: skip
    return t, t.run(resume=False)


@pytest.mark.slow
def test_compile_on_gives_the_same_checkpoint_keys_weights_and_an_exportable_student(tmp_path):
    t_off, off = _train(tmp_path, "off")
    t_on, on = _train(tmp_path, "on")
    assert on.forward is not None and on.forward.compiled
    assert off.forward is not None and not off.forward.compiled
    ckpt_on = load_checkpoint(checkpoint_path(tmp_path / "on", "annealing"))
    ckpt_off = load_checkpoint(checkpoint_path(tmp_path / "off", "annealing"))
    assert ckpt_on is not None and ckpt_off is not None
    assert list(ckpt_on["model"]) == list(ckpt_off["model"])  # no `_orig_mod.` prefix
    assert not any(k.startswith("_orig_mod") for k in on.best_state)
    for k, v in off.best_state.items():
        assert torch.allclose(on.best_state[k], v, atol=1e-5)
    assert ArmSummary.from_result(on, 0.5).to_dict()["compile"]["compiled"] is True
    student = _mlp()
    student.load_state_dict(on.best_state)
    path = export_onnx(student.eval(), (6,), tmp_path / "student.onnx", {})
    assert path.stat().st_size > 0


def test_the_recorded_choice_follows_the_published_report_schema():
    from pydantic import ValidationError

    from akd_core.report_schema import CompileChoice

    _, choice = choose_forward(_mlp(), "auto", torch.device("cpu"), _sample)
    assert CompileChoice.model_validate(choice.to_dict()).reason == choice.reason
    with pytest.raises(ValidationError):
        CompileChoice.model_validate({**choice.to_dict(), "mode": "sometimes"})
