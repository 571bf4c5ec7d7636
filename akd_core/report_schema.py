"""The published JSON Schema of report.json (CONTRACT), generated from the models below.

These models are the one source of truth: `python -m akd_core.report_schema` writes
docs/report.schema.json from them, and a test keeps that file current. Objects allow extra
properties, so the report may gain fields without breaking readers; the fields named here
may not be renamed or dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "urn:akd:report.schema.json"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "report.schema.json"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=0)]
ArmName = Literal["annealing", "kd", "student"]


class _Open(BaseModel):
    """Extra fields are allowed: the report may grow, never rename."""

    model_config = ConfigDict(extra="allow")


class HistoryRecord(_Open):
    """One epoch of one arm."""

    # Phase 2 of Annealing-KD trains on the labels only: there is no Phi to record.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "if": {"properties": {"phase": {"const": 2}}, "required": ["phase"]},
            "then": {"properties": {"phi": {"type": "null"}}},
        },
    )

    phase: Literal[1, 2] = Field(description="1: annealing (or the only phase), 2: fine-tuning")
    epoch: Annotated[int, Field(ge=1, description="epoch within its phase, from 1")]
    T: float | None = Field(description="annealing temperature of the epoch; null outside it")
    phi: Fraction | None = Field(description="Phi(T) = 1 - (T - 1) / tau_max; null in phase 2")
    train_loss: float = Field(description="mean training loss over the epoch")
    val_accuracy: Fraction = Field(description="accuracy on the validation split after it")
    lr: Annotated[float, Field(ge=0.0)] = Field(description="learning rate at the epoch's end")
    seconds: Seconds


class CompileChoice(_Open):
    """How an arm's training forward ran (optimizer.compile as applied)."""

    mode: Literal["auto", "on", "off"] = Field(description="optimizer.compile as asked")
    compiled: bool = Field(description="whether the training forward was torch.compile'd")
    reason: str = Field(description="why: the mode, the measurement, CPU, or data-parallel")
    eager_ms: float | None = Field(None, description="ms per forward+backward step, measured")
    compiled_ms: float | None = Field(None, description="the same, compiled")


class ArmReport(_Open):
    """Test and validation figures of one trained arm, with its history."""

    accuracy: Fraction = Field(description="test-split accuracy of the best-on-validation weights")
    val_accuracy: Fraction
    best_phase: Literal[1, 2]
    best_epoch: Annotated[int, Field(ge=1)]
    train_seconds: Seconds
    history: Annotated[list[HistoryRecord], Field(min_length=1)]
    compile: CompileChoice | None = Field(
        None, description="the training forward: compiled or eager; null when resumed as done"
    )


class StudentReport(ArmReport):
    """The main arm: the student that was exported."""

    arch: str
    params: Annotated[int, Field(ge=1)]


class TeacherInput(_Open):
    """The single input an ONNX teacher declares."""

    name: str
    shape: list[int | str | None] = Field(description="ints, or names/null for dynamic axes")
    dtype: str = Field(description="ONNX type, e.g. tensor(float)")


class TeacherReport(_Open):
    """The teacher as measured on the job's data."""

    format: str
    fingerprint: str
    params: Count | None = Field(description="parameter count; null when it cannot be counted")
    size_bytes: Count
    accuracy: Fraction = Field(description="test-split accuracy")
    val_accuracy: Fraction
    input: TeacherInput | None = Field(
        None, description="the teacher's declared input (ONNX); null for other formats"
    )
    latency: LatencyReport | None = Field(
        None, description="ONNX teachers: timed in the sandbox process like the student"
    )
    latency_note: str | None = Field(None, description="why the teacher was not timed")
    execution_provider: str | None = Field(
        None,
        description="ONNX teachers: the onnxruntime provider that ran them "
        "(CUDAExecutionProvider on a GPU worker with onnxruntime-gpu, else "
        "CPUExecutionProvider); null for other formats",
    )


class Params(_Open):
    """Parameter counts of teacher and student."""

    teacher: Count | None
    student: Annotated[int, Field(ge=1)]


class BatchLatency(_Open):
    """Wall time of one inference of `batch` samples (onnxruntime, CPU)."""

    batch: Annotated[int, Field(ge=1)]
    median_ms: Seconds
    p90_ms: Seconds = Field(description="90th percentile; at least the median")
    runs: Annotated[int, Field(ge=1)] = Field(description="timed runs after the warm-up")


class LengthLatency(_Open):
    """Wall time of one text of a given length in tokens (onnxruntime, CPU, batch 1)."""

    median_ms: Seconds
    p90_ms: Seconds = Field(description="90th percentile; at least the median")
    runs: Annotated[int, Field(ge=1)] = Field(description="timed runs after the warm-up")


class LatencyByLength(_Open):
    """Text students: latency at each sequence length measured."""

    threads: Annotated[int, Field(ge=1)] = Field(description="onnxruntime intra-op threads")
    warmup_runs: Count
    budget_s: Seconds
    batch: Annotated[int, Field(ge=1)]
    by_length: dict[str, LengthLatency] = Field(description="tokens per text -> its latency")


class LatencyReport(_Open):
    """Measured latency of one ONNX file at batch 1 and batch 32."""

    threads: Annotated[int, Field(ge=1)] = Field(description="onnxruntime intra-op threads")
    warmup_runs: Count
    budget_s: Seconds = Field(description="time budget per model; slow models run fewer times")
    batch1: BatchLatency
    batch32: BatchLatency | None = None


class ExportAttempt(_Open):
    """One exporter tried; `rejected` says why it was not used (null: it was used)."""

    exporter: Literal["torchscript", "dynamo"]
    seconds: Seconds
    rejected: str | None
    parity_max_abs_diff: float | None = Field(description="on the probe batch")


class ExportInfo(_Open):
    """Which exporter wrote student.onnx, chosen by parity with PyTorch on a probe batch."""

    exporter: Literal["torchscript", "dynamo"]
    seconds: Seconds
    attempts: Annotated[list[ExportAttempt], Field(min_length=1)]


class OnnxReport(_Open):
    """student.onnx and its agreement with the trained PyTorch student."""

    file: Literal["student.onnx"]
    opset: int
    size_bytes: Count
    parity_max_abs_diff: Annotated[float, Field(ge=0.0)] = Field(
        description="largest |logit difference| between ONNX Runtime and PyTorch on the test split"
    )
    argmax_agreement: Fraction = Field(description="share of test samples with the same class")
    accuracy: Fraction
    latency_ms_batch1: Seconds
    val_accuracy: Fraction | None = None
    latency: LatencyReport | None = Field(None, description="median and p90, batch 1 and 32")
    export: ExportInfo | None = None
    latency_by_length: LatencyByLength | None = Field(None, description="text students only")


class Int8Candidate(_Open):
    """One quantized copy as measured; `passed`: within tolerance and faster or smaller."""

    method: Literal["dynamic", "static_qdq"]
    accuracy: Fraction = Field(description="test split (reported, not used to choose)")
    val_accuracy: Fraction = Field(description="validation split (decides)")
    agreement_with_fp32: Fraction = Field(description="test samples with FP32's class")
    size_bytes: Count
    latency: LatencyReport
    faster: bool = Field(description="median latency at batch 1 at least 5% below FP32's")
    smaller: bool = Field(description="file smaller than student.onnx")
    passed: bool
    verdict: str = Field(description="the figures behind `passed`, in a sentence")


class Int8Report(_Open):
    """student.int8.onnx: kept only when its validation accuracy drop is within tolerance."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "if": {"properties": {"kept": {"const": True}}, "required": ["kept"]},
            "then": {"required": ["file"]},
            "else": {"required": ["reason"]},
        },
    )

    # The figures below describe the kept candidate, else the best on validation
    # (null only when no candidate could be made).
    accuracy: Fraction | None
    val_accuracy: Fraction | None
    fp32_val_accuracy: Fraction
    size_bytes: Count | None
    latency_ms_batch1: Seconds | None
    kept: bool
    file: Literal["student.int8.onnx"] | None = Field(None, description="present when kept")
    reason: str | None = Field(None, description="why no candidate was kept, one per candidate")
    method: Literal["dynamic", "static_qdq"] | None = Field(None, description="the kept one")
    why: str | None = Field(None, description="why the kept candidate passed")
    tolerance: Fraction | None = Field(None, description="export.int8_max_accuracy_drop")
    candidates: list[Int8Candidate] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="method: why not tried")
    latency_sequence_length: Annotated[int, Field(ge=1)] | None = Field(
        None, description="text students: the speed figures are of one text this many tokens long"
    )


class Comparison(_Open):
    """Measured ratios of a row against a base row (base figure / this row's)."""

    speedup: dict[str, float] | None = Field(description="per batch size: base median / median")
    size_ratio: float | None
    params_ratio: float | None


class SizeLatencyRow(_Open):
    """One model: parameters, file size and measured latency."""

    model: str
    file: str | None
    params: Count | None
    size_bytes: Count | None
    latency: LatencyReport | None = Field(description="null when not timed (see note)")
    note: str | None
    vs_teacher: Comparison | None = None
    vs_student_fp32: Comparison | None = None


class SizeLatencyTable(_Open):
    """Teacher, student and INT8 measured the same way, with ratios from those figures."""

    engine: str
    threads: Annotated[int, Field(ge=1)]
    batch_sizes: list[int]
    budget_s_per_model: Seconds
    statistic: str
    rows: Annotated[list[SizeLatencyRow], Field(min_length=2)]


class InputContract(_Open):
    """What student.onnx takes: by default exactly the teacher's input."""

    name: str = Field(description="the input's name (the ONNX teacher's own)")
    dtype: Literal["float32", "uint8"]
    layout: Literal["NCHW", "NHWC", "NC", "NCL"] = Field(
        description="N is the dynamic batch axis; NC: features, NCL: signals"
    )
    shape: list[int] = Field(description="one sample's shape in that layout")
    value_range: Annotated[list[float], Field(min_length=2, max_length=2)]
    value_range_source: str = Field(description="nominal, or where the range was observed")
    raw_input: bool = Field(description="true: all preprocessing is in the graph")
    normalize: dict[str, Any] = Field(
        description="dataset.normalize: stored data -> the teacher's input (outside the graph "
        "unless raw_input)"
    )
    standardize: dict[str, list[float]] = Field(
        description="the student's fixed input layer (mean, std), inside the graph"
    )
    steps_in_graph: list[str]


class DatasetSizes(_Open):
    train: Count
    val: Count
    test: Count


class DatasetReport(_Open):
    """The data the job ran on."""

    source: str
    kind: str
    input_shape: list[int]
    num_classes: Annotated[int, Field(ge=2)]
    classes: list[str]
    sizes: DatasetSizes
    fingerprint: str
    sha256: str | None = Field(None, description="the dataset file's sha256; null for builtin")
    placement: Literal["resident", "streamed"] | None = Field(
        None,
        description="resident: the splits were held in memory whole (they fit "
        "Limits.resident_data_bytes as float32); streamed: read batch by batch from the "
        "memory-mapped data cache",
    )
    skipped_files: Count | None = Field(
        None, description="unreadable image files left out (dataset.skip_bad_files)"
    )


class Timings(_Open):
    teacher_cache_s: Seconds
    teacher_cache_hit: bool
    train_s: dict[ArmName, Seconds]
    # Set by the output stage from the run's start (absent where no start was given).
    total_s: Seconds | None = None


class Runtime(_Open):
    """How the job's process ran torch: its timings are read against these."""

    torch_threads: Annotated[int, Field(ge=1)] = Field(
        description="intra-op threads (AKD_TORCH_THREADS in the service, --threads in the CLI)"
    )
    torch_interop_threads: Annotated[int, Field(ge=1)]


class TokenLengths(_Open):
    """Tokens per text of one split, as the shipped tokenizer cut them."""

    texts: Count
    tokens: Count
    mean: float
    median: float
    p95: float
    max: Count
    at_max_length: Count = Field(description="texts cut at dataset.max_length")


class TextReport(_Open):
    """Text jobs: what student.onnx takes and the folders shipped beside it."""

    inputs: list[Literal["input_ids", "attention_mask", "token_type_ids"]] = Field(
        description="the ONNX inputs, int64 of shape (batch, sequence)"
    )
    tokenizer: str = Field(description="the tokenizer folder that tokenises as training did")
    max_length: Annotated[int, Field(ge=1)] = Field(description="tokens per text in training")
    label_map: dict[str, int] = Field(description="class name -> logit index")
    student_hf_dir: str = Field(description="the student as a transformers folder")
    student_hf_reload_max_abs_diff: Annotated[float, Field(ge=0.0)]
    token_lengths: dict[str, TokenLengths] | None = Field(
        None, description="split -> tokens per text after tokenisation"
    )
    example_text: str | None = Field(None, description="the first test text, for the snippet")


class Report(_Open):
    """report.json: what a job proved about its student (CONTRACT)."""

    model_config = ConfigDict(extra="allow", title="AKD report.json")

    akd_version: str
    method: ArmName
    spec: dict[str, Any] = Field(description="the job spec as run, defaults filled in")
    dataset: DatasetReport
    preprocessing: dict[str, Any] | None
    input_contract: InputContract | None = Field(
        None, description="what student.onnx takes (also in its metadata)"
    )
    teacher: TeacherReport
    student: StudentReport
    baselines: dict[ArmName, ArmReport] = Field(
        description="the arms named in `compare`, other than the main method"
    )
    params: Params
    compression: float | None = Field(description="teacher params / student params")
    onnx: OnnxReport
    text: TextReport | None = Field(None, description="text jobs only (hf teacher, text data)")
    int8: Int8Report | None = Field(description="null unless export.int8 was asked for")
    measured: SizeLatencyTable | None = Field(
        None, description="parameters, file sizes, latency and ratios, all measured"
    )
    history: Annotated[list[HistoryRecord], Field(min_length=1)] = Field(
        description="the main arm's history, one record per epoch"
    )
    device: str
    mixed_precision: str | None
    timings: Timings
    warnings: list[str] = Field(
        default_factory=list,
        description="what a reader should know, e.g. a teacher near-perfect on the test split",
    )
    versions: dict[str, str] = Field(
        default_factory=dict, description="library versions the job ran with (torch, onnx, ...)"
    )
    runtime: Runtime | None = Field(None, description="thread counts (absent in older reports)")


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json."""
    schema = Report.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """The schema as written to docs/report.schema.json."""
    return json.dumps(report_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the given path (default docs/report.schema.json)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else SCHEMA_PATH
    path.write_text(schema_text())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
