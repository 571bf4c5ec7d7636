"""Small jobs for the method tests: a synthetic npz dataset, a fixed linear teacher, and spies.

The teacher is a frozen linear map read from a small .npy file, so its fingerprint is the
sha256 of real bytes and a second teacher is just another file. The spies replace module
attributes that the trainer looks up at call time (the loss classes, `build_optimizer`,
`accuracy`), so they watch the real training loop without changing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from akd_core import pipeline, step_loss, trainer
from akd_core.events import Hooks
from akd_core.fileio import sha256_of
from akd_core.models import build_model
from akd_core.spec import JobSpec, parse_spec
from akd_core.teachers import Teacher
from akd_core.trainer import ArmTrainer, Progress, TrainData

SHAPE = (1, 8, 8)  # one-channel 8x8 images: small, yet crop-flip applies
CLASSES = 3
SIZES = {"train": 48, "val": 12, "test": 18}  # val and test differ in size: a spy tells them apart


def teacher_weight(seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """(64, 3) weights of a linear teacher; `scale` gives other logits with the same argmax."""
    rng = np.random.default_rng(1000 + seed)
    w = rng.normal(size=(int(np.prod(SHAPE)), CLASSES))
    w -= w.mean(axis=0)  # no class wins on brightness alone: balanced labels
    return (scale * w).astype(np.float32)


def write_teacher(path: Path, seed: int = 0, scale: float = 1.0) -> Path:
    """A teacher 'file': the .npy of its weight matrix (its sha256 is its fingerprint)."""
    np.save(path, teacher_weight(seed, scale))
    return path


def write_dataset(path: Path, seed: int = 0, nudge: float = 0.0) -> Path:
    """An npz with train/val/test splits labelled by the seed-0 teacher (so it is accurate).

    `nudge` shifts one pixel of one training image: the same data but one value changed.
    """
    rng = np.random.default_rng(seed)
    w = teacher_weight(0)
    arrays: dict[str, np.ndarray] = {}
    for split, n in SIZES.items():
        x = rng.uniform(0.0, 1.0, size=(n, *SHAPE)).astype(np.float32)
        y = (x.reshape(n, -1) @ w).argmax(axis=1).astype(np.int64)
        suffix = "" if split == "train" else f"_{split}"
        arrays[f"x{suffix}"], arrays[f"y{suffix}"] = x, y
    arrays["x"][0, 0, 0, 0] += nudge
    np.savez(path, **arrays)
    return path


class FixedTeacher(Teacher):
    """A frozen linear classifier whose logits are a fixed function of its input."""

    def __init__(self, path: Path) -> None:
        super().__init__("onnx", sha256_of(path), torch.device("cpu"))
        self.weight = torch.from_numpy(np.load(path))  # (64, K)
        self.param_count = int(self.weight.numel())
        self.calls: list[torch.Tensor] = []  # every batch given to predict, in order
        self.cached_rows = 0  # rows run through logits_for (the cache-building path)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *SHAPE) -> (B, K): what this teacher answers, without recording the call."""
        return x.detach().float().flatten(1) @ self.weight

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.detach().clone())
        return self.logits(x)

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        self.cached_rows += len(x)
        return self.logits(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def install_fixed_teacher(monkeypatch: pytest.MonkeyPatch) -> list[FixedTeacher]:
    """Make run_job load FixedTeacher from the teacher path; returns the teachers it loads."""
    loaded: list[FixedTeacher] = []

    def load(spec: Any, path: Path, device: Any, **_: Any) -> FixedTeacher:
        loaded.append(FixedTeacher(path))
        return loaded[-1]

    monkeypatch.setattr(pipeline, "load_teacher", load)
    return loaded


def _spec(teacher_source: str, dataset: dict[str, Any], over: dict[str, Any]) -> JobSpec:
    base: dict[str, Any] = {
        "teacher": {"source": teacher_source},
        "student": {"arch": "mlp", "options": {"hidden": [8]}},
        "dataset": dataset,
        "annealing": {"tau_max": 2, "phase1_epochs": 4, "phase2_epochs": 2},
        "optimizer": {"batch_size": 16},
        "device": "cpu",
    }
    base.update(over)
    return parse_spec(base)


def job_spec(teacher: Path, data: Path, augment: str = "none", **over: Any) -> JobSpec:
    """A small job: mlp student, tau_max 2, E1 = 4, E2 = 2, batch 16 (3 steps an epoch)."""
    # normalize none: stored values are what the teacher takes (the default for arrays).
    dataset = {"source": f"file:{data}", "format": "npz", "normalize": "none", "augment": augment}
    return _spec(f"file:{teacher}", dataset, over)


@dataclass
class LossLog:
    """Every call of each training loss: the Phi, the teacher logits, the value."""

    phi: list[float] = field(default_factory=list)
    anneal_teacher: list[torch.Tensor] = field(default_factory=list)
    kd_teacher: list[torch.Tensor] = field(default_factory=list)
    kd_values: list[float] = field(default_factory=list)
    kd_student: list[torch.Tensor] = field(default_factory=list)
    kd_labels: list[torch.Tensor] = field(default_factory=list)
    ce_calls: int = 0
    # The student's input of the step (set by watch_students), recorded at each KD-type call.
    last_input: torch.Tensor | None = None
    teacher_step_inputs: list[torch.Tensor] = field(default_factory=list)
    # The learning rate the current optimizer will apply at each step, in call order.
    lr: list[float] = field(default_factory=list)


@dataclass
class OptimizerLog:
    """Each optimizer the trainer builds (one per phase) and the weights at that moment."""

    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    start_weights: list[dict[str, torch.Tensor]] = field(default_factory=list)


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a model's state_dict."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def spy_training(monkeypatch: pytest.MonkeyPatch) -> tuple[LossLog, OptimizerLog]:
    """Record every loss call and every optimizer the trainer builds."""
    log, opts = LossLog(), OptimizerLog()

    def current_lr() -> None:
        if opts.optimizers:
            log.lr.append(opts.optimizers[-1].param_groups[0]["lr"])

    class AnnealingSpy(step_loss.AnnealingLoss):
        def forward(self, student_logits, teacher_logits, phi):
            log.phi.append(phi)
            log.anneal_teacher.append(teacher_logits.detach().clone())
            if log.last_input is not None:
                log.teacher_step_inputs.append(log.last_input)
            current_lr()
            return super().forward(student_logits, teacher_logits, phi)

    class KDSpy(step_loss.HintonKDLoss):
        def forward(self, student_logits, teacher_logits, labels):
            log.kd_teacher.append(teacher_logits.detach().clone())
            log.kd_student.append(student_logits.detach().clone())
            log.kd_labels.append(labels.clone())
            if log.last_input is not None:
                log.teacher_step_inputs.append(log.last_input)
            value = super().forward(student_logits, teacher_logits, labels)
            log.kd_values.append(float(value.detach()))
            current_lr()
            return value

    class CESpy(step_loss.CrossEntropyLoss):
        def forward(self, student_logits, labels):
            log.ce_calls += 1
            current_lr()
            return super().forward(student_logits, labels)

    real_build = trainer.build_optimizer

    def build(model, spec, **kwargs):
        opts.start_weights.append(state_copy(model))
        opts.optimizers.append(real_build(model, spec, **kwargs))
        return opts.optimizers[-1]

    monkeypatch.setattr(step_loss, "AnnealingLoss", AnnealingSpy)
    monkeypatch.setattr(step_loss, "HintonKDLoss", KDSpy)
    monkeypatch.setattr(step_loss, "CrossEntropyLoss", CESpy)
    monkeypatch.setattr(trainer, "build_optimizer", build)
    return log, opts


@dataclass
class ScriptedAccuracy:
    """Validation accuracies chosen by the test, and the weights evaluated at each epoch."""

    by_size: dict[int, list[float]]  # split size -> accuracies, one per call
    seen_sizes: list[int] = field(default_factory=list)
    weights: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def __call__(self, model, x, y, batch_size, amp=None, decode=None) -> float:
        n = len(x)
        if n not in self.by_size:
            raise AssertionError(f"the trainer evaluated a split of unexpected size {n}")
        self.seen_sizes.append(n)
        self.weights.append(state_copy(model))
        calls = self.seen_sizes.count(n)
        return self.by_size[n][calls - 1]


def script_accuracy(
    monkeypatch: pytest.MonkeyPatch, by_size: dict[int, list[float]]
) -> ScriptedAccuracy:
    """Make the trainer's per-epoch evaluation return scripted accuracies by split size."""
    scripted = ScriptedAccuracy(by_size)
    monkeypatch.setattr(trainer, "accuracy", scripted)
    return scripted


def synthetic_train_data(n: int = 32, features: int = 6, classes: int = 3) -> TrainData:
    """Feature data with fixed cached teacher logits, for ArmTrainer without a pipeline."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn((n, features), generator=g)  # centred: every class occurs
    logits = x @ torch.randn((features, classes), generator=g)
    y = logits.argmax(dim=1)
    return TrainData(
        x_train=x, y_train=y, x_val=x[:8].clone(), y_val=y[:8].clone(), teacher_train=logits
    )


def arm_spec(**over: Any) -> JobSpec:
    """The same small job for ArmTrainer tests (its sources are never opened); 2 steps an epoch."""
    return _spec("file:unused.onnx", {"source": "file:unused.npz"}, over)


class StopAfter:
    """A cancel check that says stop at its n-th call (the trainer checks once per step)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def annealing_trainer(
    out: Path,
    hooks: Hooks,
    progress: Progress | None = None,
    run_key: str = "job-1",
    amp_dtype: torch.dtype | None = None,
) -> ArmTrainer:
    """A seeded mlp student's annealing arm on synthetic data: 2 + 2 epochs of 2 steps each."""
    spec = arm_spec(annealing={"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 2})
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, {"hidden": [8]})
    return ArmTrainer("annealing", spec, model, synthetic_train_data(), torch.device("cpu"),
                      out, hooks, progress or Progress(4), amp_dtype=amp_dtype,
                      run_key=run_key)  # fmt: skip


def train_arm(
    arm: str, spec: JobSpec, data: TrainData, out_dir: Path, seed: int = 0
) -> tuple[ArmTrainer, Any]:
    """Build a fresh seeded student and train one arm; returns the trainer and its result."""
    torch.manual_seed(seed)
    n_features = data.x_train.shape[1]
    n_classes = int(data.teacher_train.shape[1]) if data.teacher_train is not None else 3
    model = build_model("mlp", (n_features,), n_classes, {"hidden": [8]})
    t = ArmTrainer(
        arm, spec, model, data, torch.device("cpu"), out_dir, Hooks(), Progress(total_epochs=1)
    )
    return t, t.run(resume=False)


@dataclass
class StudentLog:
    """The initial weights of every student run_job builds, in arm order."""

    initial: list[dict[str, torch.Tensor]] = field(default_factory=list)


def watch_students(monkeypatch: pytest.MonkeyPatch, log: LossLog | None = None) -> StudentLog:
    """Record each student's initial weights; with `log`, each training input as last_input."""
    students = StudentLog()
    # The student as trained: the registry model behind its fixed input layer.
    real_build = pipeline.with_input_layer

    def build(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = real_build(*args, **kwargs)
        students.initial.append(state_copy(model))

        def remember(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if log is not None and module.training:  # export and evaluation run in eval mode
                log.last_input = inputs[0].detach().clone()

        model.register_forward_pre_hook(remember)
        return model

    monkeypatch.setattr(pipeline, "with_input_layer", build)
    return students


@dataclass
class OutputsLog:
    """What run_job handed to the output stage (export and report are skipped)."""

    facts: Any = None
    student: torch.nn.Module | None = None
    arms: dict[str, Any] = field(default_factory=dict)


def skip_outputs(monkeypatch: pytest.MonkeyPatch) -> OutputsLog:
    """Replace ONNX export and the report (seconds each) with a recorder: for training tests."""
    out = OutputsLog()

    def write(out_dir: Path, facts: Any, student: torch.nn.Module, arms: dict, **_: Any) -> dict:
        out.facts, out.student, out.arms = facts, student, arms
        return {"timings": {"teacher_cache_hit": facts.cache_hit}}

    monkeypatch.setattr(pipeline, "write_outputs", write)
    return out
