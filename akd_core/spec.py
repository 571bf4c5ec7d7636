"""The job spec: the body of POST /jobs and the file given to `akd distill` (CONTRACT)."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from akd_core.errors import SpecError

SOURCE_PATTERN = r"^(upload:[A-Za-z0-9_\-]+|builtin:[a-z0-9_\-]+|file:.+)$"
Source = Annotated[
    str,
    Field(
        pattern=SOURCE_PATTERN,
        description="`upload:<id>` (API), `builtin:<name>` or `file:<path>` (CLI only)",
        examples=["upload:3f2a9c", "builtin:digits", "file:data/train.npz"],
    ),
]
# Teachers may also name a transformers model on a hub (`hf:<org>/<name>`, where one is reachable).
TEACHER_SOURCE_PATTERN = (
    r"^(upload:[A-Za-z0-9_\-]+|builtin:[a-z0-9_\-]+|file:.+|hf:[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?)$"
)
TeacherSource = Annotated[
    str,
    Field(
        pattern=TEACHER_SOURCE_PATTERN,
        description="`upload:<id>` (API), `file:<path>` (CLI only; a folder for format hf or "
        "an ONNX text teacher) or `hf:<org>/<name>` (a hub model id, format hf, API and CLI: "
        "read from the worker's hub or hub cache)",
        examples=["upload:3f2a9c", "file:teacher.onnx", "hf:org/bert-base-finetuned"],
    ),
]
Method = Literal["annealing", "kd", "student"]
TeacherFormat = Literal["onnx", "torchscript", "safetensors", "hf"]
DatasetFormat = Literal["npz", "imagefolder", "cifar", "csv", "jsonl"]

TEACHER_EXTENSIONS: dict[str, TeacherFormat] = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".safetensors": "safetensors",
}
DATASET_EXTENSIONS: dict[str, DatasetFormat] = {
    ".npz": "npz",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".zip": "imagefolder",
    ".tar": "imagefolder",
    ".tgz": "imagefolder",
    ".tar.gz": "imagefolder",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeacherSpec(_Strict):
    """Where the teacher comes from and how to read it."""

    source: TeacherSource
    format: TeacherFormat | None = Field(
        None,
        description="Inferred from the file extension of `file:` sources when omitted. With "
        "a text student (bert, shrink-teacher), `onnx` is a folder or zip/tar holding one "
        ".onnx file (int64 inputs input_ids, attention_mask[, token_type_ids]) and the "
        "tokenizer files.",
    )
    arch: str | None = Field(
        None, description="Registry model name; required with format=safetensors."
    )
    arch_options: dict[str, Any] = Field(
        default_factory=dict, description="Options for the registry model, e.g. {'width': 16}."
    )

    @model_validator(mode="after")
    def _arch_needed(self) -> TeacherSpec:
        if self.format == "safetensors" and not self.arch:
            raise ValueError(
                "format 'safetensors' holds weights only: name the architecture in "
                "teacher.arch (e.g. 'resnet56')"
            )
        return self


class StudentSpec(_Strict):
    """The student architecture, by registry name."""

    arch: str = Field(..., examples=["resnet8", "cnn-small", "mlp"])
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Architecture options, e.g. {'hidden': [64, 32]} for mlp, {'width': 16} for cnn.",
    )


class NormalizeExplicit(_Strict):
    mean: list[float] = Field(..., min_length=1)
    std: list[float] = Field(..., min_length=1)

    @field_validator("std")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("every std must be > 0")
        return v


class DatasetSpec(_Strict):
    """The dataset, its format, splits and preprocessing (the teacher sees what the student sees)."""

    source: Source
    format: DatasetFormat | None = Field(None, description="Inferred where unambiguous.")
    normalize: Literal["none", "train-mean-std"] | NormalizeExplicit | None = Field(
        None,
        description="What turns the stored data into the teacher's input; the student takes "
        "the same. Default: none, i.e. the data as stored (images as float32 NCHW in [0, 1], "
        "arrays as stored), or the mean/std the teacher declares in its ONNX metadata. The "
        "student standardises its input itself, inside its graph.",
    )
    augment: Literal["none", "crop-flip"] = "none"
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(
        0.2, gt=0.0, lt=0.5, description="Used only when the data has no test split of its own."
    )
    image_size: int | None = Field(
        None, ge=8, le=512, description="Image-folder images are resized to this square size."
    )
    skip_bad_files: bool = Field(
        False,
        description="Image folders: leave out files that cannot be read as images (they are "
        "listed in the report) instead of refusing the dataset.",
    )
    label_column: str = Field("label", description="CSV column holding the class label.")
    num_classes: int | None = Field(
        None,
        ge=2,
        description="Declared number of classes; labels must then be 0..num_classes-1. "
        "Default: the number of distinct labels (numbers in numeric order, else names sorted).",
    )
    max_train_samples: int | None = Field(
        None, ge=1, description="Cap on training samples (quick trials)."
    )
    # Text datasets (csv/jsonl of sentences, with a transformers teacher).
    text_column: str = Field("text", description="Text data: the column holding the text.")
    text_pair_column: str | None = Field(
        None, description="Text data: a second text column (sentence pairs, e.g. NLI)."
    )
    split_column: str | None = Field(
        None,
        description="Text data: a column naming each row's split (train, val/validation/dev, "
        "test); rows of missing splits are carved from train.",
    )
    val_source: Source | None = Field(
        None, description="Text data: a separate validation file (same format and columns)."
    )
    test_source: Source | None = Field(
        None, description="Text data: a separate test file (same format and columns)."
    )
    max_length: int = Field(
        128, ge=8, le=4096, description="Text data: tokens per sample after truncation."
    )


class AnnealingSpec(_Strict):
    """Annealing-KD schedule: Phase 1 of E1 epochs over T = tau_max..1, then E2 epochs of CE."""

    tau_max: int = Field(10, ge=1, le=1000)
    phase1_epochs: int = Field(20, ge=1)
    phase2_epochs: int = Field(10, ge=0)

    @model_validator(mode="after")
    def _multiple(self) -> AnnealingSpec:
        if self.phase1_epochs % self.tau_max:
            lo = (self.phase1_epochs // self.tau_max) * self.tau_max
            hi = lo + self.tau_max
            near = f"{lo} or {hi}" if lo else f"{hi}"
            raise ValueError(
                f"phase1_epochs ({self.phase1_epochs}) must be a multiple of tau_max "
                f"({self.tau_max}) so that each T gets the same number of epochs; "
                f"use e.g. phase1_epochs {near}"
            )
        return self

    @property
    def total_epochs(self) -> int:
        return self.phase1_epochs + self.phase2_epochs


class KDSpec(_Strict):
    """Hinton KD baseline: (1-alpha) CE + alpha T^2 KL(teacher_T || student_T)."""

    temperature: float = Field(4.0, gt=0.0)
    alpha: float = Field(0.9, ge=0.0, le=1.0)


class OptimizerSpec(_Strict):
    """Optimizer and learning-rate schedule, restarted for each phase."""

    name: Literal["sgd", "adamw"] = "adamw"
    lr: float | None = Field(None, gt=0.0, description="Default: 0.1 for sgd, 1e-2 for adamw.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float | None = Field(
        None, ge=0.0, description="Default: 1e-4 for sgd, 1e-2 for adamw."
    )
    schedule: Literal["step", "cosine", "constant", "linear"] | None = Field(
        None,
        description="step: x0.1 at 50% and 75% of each phase (paper); linear: warm-up over "
        "the first 10% of each phase's steps, then linear decay to 0 (the paper's GLUE "
        "recipe, the default for text students); default cosine for adamw.",
    )
    batch_size: int = Field(128, ge=1, le=65536)
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile of the student's training forward. auto: on CUDA, time a "
        "few compiled and eager steps and keep the faster (eager if compiling fails); eager "
        "on CPU. report.json records the choice per arm (student.compile, "
        "baselines.<arm>.compile). Checkpoints and the "
        "exported ONNX are the same either way.",
    )
    micro_batch_size: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="The batch the device holds at once (default: batch_size). batch_size stays "
        "the batch of one optimizer step: its gradient is accumulated over batch_size / "
        "micro_batch_size micro-batches, each loss weighted by its share of the batch, so it "
        "equals the full batch's (BatchNorm statistics are per micro-batch). Must divide "
        "batch_size.",
    )

    @model_validator(mode="after")
    def _micro_batch_divides(self) -> OptimizerSpec:
        m, b = self.micro_batch_size, self.batch_size
        if m is not None and (m > b or b % m):
            fits = [d for d in range(min(m, b), 0, -1) if b % d == 0][:3]
            raise ValueError(
                f"micro_batch_size ({m}) must divide batch_size ({b}) so that every step "
                f"accumulates equal micro-batches; use e.g. micro_batch_size "
                f"{' or '.join(map(str, fits))}"
            )
        return self

    @property
    def resolved_micro_batch_size(self) -> int:
        """Rows per forward/backward pass: micro_batch_size, else the whole batch."""
        return self.micro_batch_size or self.batch_size

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else (0.1 if self.name == "sgd" else 1e-2)

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 1e-4 if self.name == "sgd" else 1e-2

    @property
    def resolved_schedule(self) -> str:
        if self.schedule is not None:
            return self.schedule
        return "step" if self.name == "sgd" else "cosine"


class ExportSpec(_Strict):
    int8: bool = Field(
        False,
        description="Also write student.int8.onnx if its validation accuracy is within "
        "int8_max_accuracy_drop of the FP32 student AND it is measured faster or smaller; "
        "report.json says which candidate was refused and why.",
    )
    int8_max_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)
    opset: int = Field(18, ge=13, le=23)
    raw_input: StrictBool = Field(
        False,
        description="Bake all preprocessing into student.onnx: it then takes the data as "
        "stored (uint8 NHWC RGB pixels for 8-bit images, raw features for arrays) instead "
        "of the teacher's input.",
    )


class JobSpec(_Strict):
    """A distillation job. Only teacher, student and dataset are required."""

    teacher: TeacherSpec
    student: StudentSpec
    dataset: DatasetSpec
    method: Method = "annealing"
    annealing: AnnealingSpec = Field(default_factory=AnnealingSpec)
    kd: KDSpec = Field(default_factory=KDSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    compare: list[Method] = Field(
        default_factory=list,
        description="Baselines trained in the same job with the same epoch budget, for the report.",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = Field(
        True,
        description="Autocast on CUDA: bf16 on GPUs of compute capability 8.0 or more, else "
        "fp16 with loss scaling; ignored on CPU.",
    )
    deterministic: bool = Field(
        False,
        description="Deterministic cuDNN and torch kernels, for bit-exact resume on CUDA "
        "(slower); CPU runs are exact either way.",
    )
    min_teacher_accuracy: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Stop when the teacher's validation accuracy is below this "
        "(default: 1.5 x chance).",
    )
    export: ExportSpec = Field(default_factory=ExportSpec)

    @field_validator("compare")
    @classmethod
    def _unique(cls, v: list[Method]) -> list[Method]:
        if len(set(v)) != len(v):
            raise ValueError(f"compare lists a method twice: {v}")
        return v

    @property
    def epoch_budget(self) -> int:
        """Total epochs every arm gets: E1 + E2 of the annealing schedule."""
        return self.annealing.total_epochs

    @property
    def arms(self) -> list[Method]:
        """The main method first, then the compared baselines (without repeating it)."""
        return [self.method, *[m for m in self.compare if m != self.method]]


def _loc(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"] if not re.fullmatch(r"function-after\[.*\]", str(p)))


def _did_you_mean(word: str, choices: list[str]) -> str:
    """ "; did you mean 'x'?" for the closest accepted name (difflib), else the names accepted."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; accepted: {', '.join(choices)}" if choices else ""


def _fields_at(parts: list[str]) -> list[str]:
    """The field names the spec model accepts at a dotted location ([] past a free-form dict)."""
    model: Any = JobSpec
    for part in parts:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        models = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type)]
        model = next((m for m in models if issubclass(m, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _literal_choices(err: Any) -> list[str]:
    """The values a Literal field accepts, read from pydantic's "expected" text."""
    return re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))


def parse_spec(data: dict[str, Any] | str | bytes) -> JobSpec:
    """Validate a spec given as a dict or JSON text; raise SpecError naming the field."""
    try:
        if isinstance(data, str | bytes):
            return JobSpec.model_validate_json(data)
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = _loc(first) or "spec"
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            name = loc.split(".")[-1]
            msg = f"unknown field '{name}' (not part of the job spec)"
            msg += _did_you_mean(name, _fields_at(loc.split(".")[:-1]))
        elif first["type"] == "literal_error":
            msg += _did_you_mean(str(first.get("input")), _literal_choices(first))
        elif first["type"] == "string_pattern_mismatch":
            msg = (
                f"{first.get('input')!r} is not a valid source; use upload:<id>, "
                "builtin:<name> or file:<path>"
            )
        raise SpecError(msg, field=loc) from exc


def load_spec_file(path: str | Path) -> JobSpec:
    """Read and validate a spec file (JSON)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read spec file {p}: {exc.strerror}", field="spec") from exc
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{p} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            field="spec",
        ) from exc
    return parse_spec(text)


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the job spec."""
    return JobSpec.model_json_schema()
