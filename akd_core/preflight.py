"""Pre-flight: the checks a run passes in seconds, before its data is read or any training.

`check_spec` and `estimate_memory` import no torch, so the API runs them at POST /jobs too;
`check_student_export` exports the untrained student and runs it in onnxruntime; the
memory check compares the estimate with what the device has free.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from akd_core.errors import SpecError
from akd_core.models.names import (
    _PLAIN_LAYOUT,
    DEFAULT_HIDDEN,
    DEFAULT_WIDTH,
    FEATURES,
    INPUT_KINDS,
    check_arch_name,
    check_arch_options,
    input_kind,
    student_params,
)
from akd_core.text.names import check_text_export, is_text_arch, text_student_params

if TYPE_CHECKING:
    from akd_core.data import Dataset
    from akd_core.data.peek import Peek
    from akd_core.spec import JobSpec, TeacherSpec

GIB = 1024**3
# A teacher at or above this test accuracy may have been trained on the test split.
NEAR_PERFECT = 0.995
# Share of the device's free memory a run may plan to use (allocator caches, fragmentation).
HEADROOM = 0.9
# A sample shape of each input kind, for checking option values before the data is known.
_PROBE_SHAPES = {FEATURES: (16,), "signal": (1, 16), "image": (3, 32, 32)}


def check_spec(spec: JobSpec) -> None:
    """Raise SpecError for an unknown architecture, option or option value, or builtin dataset."""
    arch, options = spec.student.arch, spec.student.options
    check_arch_name(arch, "student.arch")
    check_arch_options(arch, options, "student.options")
    if is_text_arch(arch):  # sized by the teacher's config, known once its folder is read
        text_student_params(arch, options, {}, 2)  # validates the option values
        check_text_export(spec.export.raw_input)
    else:
        # The parameter formula validates every option's value; any shape of an accepted kind will do.
        student_params(arch, options, _PROBE_SHAPES[INPUT_KINDS[arch][0]], 2)
    if spec.teacher.arch:
        check_arch_name(spec.teacher.arch, "teacher.arch")
        check_arch_options(spec.teacher.arch, spec.teacher.arch_options, "teacher.arch_options")
    scheme, _, name = spec.dataset.source.partition(":")
    if scheme == "builtin":
        from akd_core.data.builtin import BUILTINS  # torch-free registry

        if name not in BUILTINS:
            raise SpecError(
                f"there is no builtin dataset {name[:80]!r}; available: {', '.join(sorted(BUILTINS))}",
                field="dataset.source",
            )


@dataclass(frozen=True)
class DataPeek:
    """What pre-flight learnt from the dataset's headers and names, before reading its data."""

    exported: bool  # the untrained student's export was checked (else `after_data` does it)
    shape: tuple[int, ...] | None  # one sample's shape exactly as loaded; None: not told
    num_classes: int | None  # the class count exactly as loaded; None: not told

    def teacher_probe(self, teacher: TeacherSpec) -> tuple[int, ...] | None:
        """The sample shape to load and run the teacher on before the data is read, or None."""
        # A safetensors teacher (one with an arch) is built for the class count: it must be known.
        if teacher.arch is not None and self.num_classes is None:
            return None
        return self.shape


def before_data(
    spec: JobSpec, data_path: Path | None, device: str | None = None, teacher_bytes: int = 0
) -> DataPeek:
    """Check the spec; export the student and estimate the memory on `device` where the
    headers tell the sample shape (and the class and sample counts)."""
    from akd_core.data.peek import peek_dataset, peek_exact
    from akd_core.formats import infer_dataset_format

    check_spec(spec)
    fmt: str | None = spec.dataset.format
    if data_path is not None:
        fmt = infer_dataset_format(data_path, fmt)
    exact, num_classes = peek_exact(spec.dataset, fmt, data_path)
    # Where the exact shape is not told, a lower bound still checks the student's export.
    shape = exact or peek_dataset(spec.dataset, fmt, data_path)[0]
    if shape is not None:
        check_student_export(spec, shape, num_classes or 2)
    estimate = header_estimate(spec, fmt, data_path, teacher_bytes, (exact, num_classes))
    if device is not None and estimate is not None:
        check_memory(estimate, available_memory(device), device)  # nothing loaded yet
    return DataPeek(shape is not None, exact, num_classes)


def header_estimate(
    spec: JobSpec,
    fmt: str | None,
    data_path: Path | None,
    teacher_bytes: int,
    peeked: Peek | None = None,
) -> MemoryEstimate | None:
    """The memory estimate from the dataset's headers (torch-free; the API runs it too), or
    None where they do not tell the sample shape, the class count and the sample count."""
    from akd_core.data.peek import peek_counts, peek_exact

    shape, num_classes = peeked or peek_exact(spec.dataset, fmt, data_path)
    counts = peek_counts(spec.dataset, fmt, data_path)
    if shape is None or not num_classes or counts is None or is_text_arch(spec.student.arch):
        return None
    return estimate_memory(spec, shape, num_classes, counts[0], teacher_bytes, counts[1])


def after_data(
    spec: JobSpec, ds: Dataset, teacher_bytes: int, device: str, exported: bool
) -> MemoryEstimate:
    """The checks that need the loaded data: the export (if not done) and the memory estimate."""
    if not exported:
        check_student_export(spec, ds.input_shape, ds.num_classes)
    splits = (ds.x_train, ds.x_val, ds.x_test, ds.y_train, ds.y_val, ds.y_test)
    estimate = estimate_memory(
        spec, ds.input_shape, ds.num_classes, sum(len(y) for y in splits[3:]), teacher_bytes,
        train_samples=len(ds.y_train),
    )  # fmt: skip
    # On the CPU the loaded splits are the tensors training uses: already counted as used.
    # Streamed splits are read per batch from the data cache: they need no room anywhere.
    streamed = ds.placement == "streamed"
    resident = 0 if device.startswith("cuda") and not streamed else sum(a.nbytes for a in splits)
    check_memory(estimate, available_memory(device, resident), device)
    return estimate


# Student configurations whose untrained export passed in this process: a worker runs many
# jobs, and the same arch, options, shape, classes and opset export the same way each time.
_EXPORT_PASSED: set[str] = set()


def check_student_export(spec: JobSpec, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Export the untrained student at export.opset and run it in onnxruntime on 2 zero samples."""
    import json

    import numpy as np
    import torch

    from akd_core.export import export_onnx
    from akd_core.models import build_model
    from akd_core.models.onnx_runner import make_session

    torch.manual_seed(0)  # on a repeat too: the global RNG is left as the export leaves it
    key = json.dumps([spec.student.arch, spec.student.options, input_shape, num_classes,
                      spec.export.opset], sort_keys=True, default=str)  # fmt: skip
    if key in _EXPORT_PASSED:
        return
    # build_model names student.arch / student.options when they do not fit the data.
    net = build_model(spec.student.arch, input_shape, num_classes, spec.student.options)
    opset = spec.export.opset
    with tempfile.TemporaryDirectory(prefix="akd-preflight-") as tmp:
        try:
            path = export_onnx(net, input_shape, Path(tmp) / "student.onnx", {}, opset)
            session = make_session(path)
            x = np.zeros((2, *input_shape), np.float32)
            out = session.run(None, {session.get_inputs()[0].name: x})[0]
        except Exception as exc:  # the exporter's and onnxruntime's errors come in many types
            raise SpecError(
                f"the untrained student {spec.student.arch!r} could not be exported to ONNX at "
                f"opset {opset} and run in onnxruntime: {_one_line(exc)}; try another "
                "export.opset (13 to 23) or student.arch",
                field="export.opset",
            ) from exc
    if out.shape != (2, num_classes) or not np.isfinite(out).all():
        raise SpecError(
            f"the exported student gave {out.shape} outputs for 2 samples at opset {opset}, "
            f"expected (2, {num_classes}) finite logits; try another export.opset",
            field="export.opset",
        )
    _EXPORT_PASSED.add(key)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a run on its device, in bytes, by what holds it."""

    data: int  # every split and the teacher's training logits
    teacher: int
    student: int
    gradients: int
    optimizer: int
    activations: int  # one training batch, forward and backward
    batch_size: int

    @property
    def total(self) -> int:
        return (
            self.data + self.teacher + self.student + self.gradients + self.optimizer
            + self.activations
        )  # fmt: skip


def activation_elements(
    arch: str, options: dict, input_shape: tuple[int, ...], num_classes: int
) -> int:
    """Values per sample that a training forward pass keeps for backward (every layer's output)."""
    if input_kind(input_shape) != "image" or arch == "mlp":
        hidden = options.get("hidden") or list(DEFAULT_HIDDEN)
        return math.prod(input_shape) + sum(2 * h for h in hidden) + num_classes  # linear + ReLU
    _, h, w = input_shape
    width = int(options.get("width", DEFAULT_WIDTH[arch]))
    if arch in _PLAIN_LAYOUT:
        multipliers, blocks = _PLAIN_LAYOUT[arch]
        # conv, BN, ReLU per block at the stage's size; 2x2 max-pool between stages.
        return sum(
            (3 * blocks + 1) * m * width * (h >> i) * (w >> i) for i, m in enumerate(multipliers)
        )
    n = (int(arch.removeprefix("resnet")) - 2) // 6
    total = 3 * width * h * w  # stem conv, BN, ReLU
    for stage in range(3):
        side = math.ceil(h / 2**stage) * math.ceil(w / 2**stage)
        # conv, BN, ReLU, conv, BN, add, ReLU per block; a projection (conv + BN) in stages 2-3.
        total += (7 * n + (2 if stage else 0)) * width * 2**stage * side
    return total


def estimate_memory(
    spec: JobSpec,
    input_shape: tuple[int, ...],
    num_classes: int,
    samples: int,
    teacher_bytes: int,
    train_samples: int | None = None,
) -> MemoryEstimate:
    """Peak memory of training `spec` on `samples` samples (all splits), without torch."""
    params = student_params(spec.student.arch, spec.student.options, input_shape, num_classes)
    per_sample = 4 * math.prod(input_shape) + 8  # float32 sample + int64 label
    train = samples if train_samples is None else train_samples
    batch = spec.optimizer.resolved_micro_batch_size  # the rows whose activations are held at once
    acts = activation_elements(spec.student.arch, spec.student.options, input_shape, num_classes)
    states = 2 if spec.optimizer.name == "adamw" else (1 if spec.optimizer.momentum else 0)
    return MemoryEstimate(
        data=samples * per_sample + train * num_classes * 4,
        teacher=teacher_bytes,
        student=4 * params,
        gradients=4 * params,
        optimizer=4 * params * states,
        # Each kept value and its gradient, in float32 (mixed precision only lowers this).
        activations=2 * 4 * batch * acts,
        batch_size=batch,
    )


def check_memory(estimate: MemoryEstimate, available: int, device: str) -> None:
    """Raise SpecError naming the fields to change when the estimate exceeds the free memory."""
    budget = int(available * HEADROOM)
    if estimate.total <= budget:
        return
    e = estimate
    weights = e.student + e.gradients + e.optimizer
    field, advice = max(
        (e.activations, "optimizer.batch_size", "lower optimizer.batch_size"),
        (weights, "student.options", "choose a smaller student (student.arch, student.options)"),
        (e.data, "dataset.max_train_samples", "cap dataset.max_train_samples"),
    )[1:]
    raise SpecError(
        f"the run needs an estimated {_gib(e.total)} at its peak (data {_gib(e.data)}, teacher "
        f"{_gib(e.teacher)}, student {_gib(e.student)}, gradients {_gib(e.gradients)}, "
        f"optimizer state {_gib(e.optimizer)}, batch activations {_gib(e.activations)} at "
        f"optimizer.batch_size {e.batch_size}), more than the {_gib(budget)} usable of "
        f"{_gib(available)} free on {device}; {advice}, or change optimizer.batch_size, "
        "student.arch/student.options or dataset.max_train_samples",
        field=field,
    )


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def available_memory(device: str, resident: int = 0) -> int:
    """Free bytes on `device`; on the CPU plus `resident` (the loaded data the run already holds)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available) + resident


def teacher_test_warning(test_accuracy: float, test_samples: int) -> str | None:
    """A warning when the teacher is near-perfect on the test split: it may have seen it."""
    if test_samples == 0 or test_accuracy < NEAR_PERFECT:
        return None
    return (
        f"the teacher scores {100 * test_accuracy:.2f}% on the test split ({test_samples} "
        "samples): it may have been trained on these samples, which would flatter every test "
        "figure; supply a test split the teacher never saw (e.g. an npz with x_test and "
        "y_test)"
    )
