"""The outputs of a run (CONTRACT): student.onnx, student.safetensors, report.json, report.md."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from akd_core import __version__
from akd_core.data import Dataset
from akd_core.events import Stage
from akd_core.export import export_checked, onnx_parity
from akd_core.export_contract import (
    InputContract,
    contract_inputs,
    deployable,
    example_dtype,
    input_contract,
)
from akd_core.export_metadata import student_metadata
from akd_core.fileio import atomic_write, atomic_write_json
from akd_core.int8 import CALIBRATION_SAMPLES, Split, measure_file
from akd_core.int8_select import Int8Inputs, select_int8
from akd_core.latency import measure_latency
from akd_core.models import count_params
from akd_core.report_md import write_model_card
from akd_core.size_latency import size_latency_table, teacher_latency
from akd_core.spec import JobSpec
from akd_core.torch_threads import runtime_facts
from akd_core.trainer import ArmResult

STUDENT_ONNX = "student.onnx"
STUDENT_INT8_ONNX = "student.int8.onnx"
STUDENT_WEIGHTS = "student.safetensors"
REPORT_JSON = "report.json"
PARITY_PROBE = 64  # test samples the exporter's graph must reproduce before it is kept


@dataclass(frozen=True)
class ArmSummary:
    """Test and validation figures of one trained arm."""

    accuracy: float
    val_accuracy: float
    best_phase: int
    best_epoch: int
    train_seconds: float
    history: list[dict[str, Any]]
    compile: dict[str, Any] | None = None  # the training forward: compiled or eager, and why

    @classmethod
    def from_result(cls, result: ArmResult, test_accuracy: float) -> ArmSummary:
        return cls(
            accuracy=test_accuracy,
            val_accuracy=result.best_val_accuracy,
            best_phase=result.best_phase,
            best_epoch=result.best_epoch,
            train_seconds=result.train_seconds,
            history=[r.to_dict() for r in result.history],
            compile=result.forward.to_dict() if result.forward else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "val_accuracy": self.val_accuracy,
            "best_phase": self.best_phase,
            "best_epoch": self.best_epoch,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "compile": self.compile,
        }


@dataclass(frozen=True)
class RunFacts:
    """What the pipeline learned before and around training, for the report."""

    spec: JobSpec
    dataset: Dataset
    teacher: dict[str, Any]  # format, fingerprint, params, size_bytes
    teacher_val_accuracy: float
    teacher_test_accuracy: float
    device: str
    amp: str | None
    cache_seconds: float
    cache_hit: bool
    # time.perf_counter() when the run began: report.json's timings.total_s counts from it.
    started: float | None = None
    # Things a reader must know before trusting the figures (e.g. a teacher that saw the test split).
    warnings: tuple[str, ...] = ()


def onnx_metadata(facts: RunFacts, contract: InputContract) -> dict[str, str]:
    """ONNX metadata_props: what an edge runtime needs to feed the student correctly."""
    return student_metadata(
        facts.spec, facts.dataset, str(facts.teacher.get("fingerprint", "")), contract
    )


def write_outputs(
    out_dir: Path,
    facts: RunFacts,
    student: torch.nn.Module,
    arms: dict[str, ArmSummary],
    on_stage: Callable[[Stage, float], None] | None = None,
) -> dict[str, Any]:
    """Export the main arm's student, check it, and write the report; returns report.json's dict."""
    spec, ds = facts.spec, facts.dataset
    student = student.cpu().eval()
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    atomic_write(out_dir / STUDENT_WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    # student.onnx takes the teacher's input (its name too), or raw data with export.raw_input.
    teacher_input = facts.teacher.get("input") or {}
    contract = input_contract(ds, student, spec.export.raw_input, teacher_input.get("name"))
    deployed, x_test = deployable(student, ds, contract), contract_inputs(ds, contract, "test")
    x_val = contract_inputs(ds, contract, "val")
    record = export_checked(
        deployed, tuple(contract.shape), out_dir / STUDENT_ONNX, onnx_metadata(facts, contract),
        spec.export.opset, input_name=contract.name, input_dtype=example_dtype(contract),
        probe=(x_test if len(x_test) else x_val)[:PARITY_PROBE],
    )  # fmt: skip
    onnx_path = record.path
    if on_stage:
        on_stage("evaluating", 0.96)
    val, test = Split(x_val, ds.y_val), Split(x_test, ds.y_test)
    # The session the export's parity probe ran on is this file's: not opened twice.
    fp32 = measure_file(onnx_path, val, test, contract.shape, measure_latency, record.session)
    # The test logits just measured are the ONNX side of the parity check: not run twice.
    parity = onnx_parity(onnx_path, deployed, x_test, onnx_out=fp32.test_logits)
    onnx_info = {
        "file": STUDENT_ONNX,
        "opset": spec.export.opset,
        "size_bytes": fp32.size_bytes,
        "parity_max_abs_diff": parity["max_abs_diff"],
        "argmax_agreement": parity["argmax_agreement"],
        "accuracy": fp32.accuracy,
        "val_accuracy": fp32.val_accuracy,
        "latency_ms_batch1": fp32.ms_batch1,
        "latency": fp32.latency.to_dict(),
        "export": record.to_dict(),
    }
    int8 = None
    if spec.export.int8:
        inputs = Int8Inputs(val, test, _calibration(ds, contract, spec.seed), contract.shape)
        limit = spec.export.int8_max_accuracy_drop
        int8 = select_int8(onnx_path, fp32, inputs, limit, out_dir / STUDENT_INT8_ONNX)

    main = arms[spec.method]
    student_params = count_params(student)
    teacher_params = facts.teacher.get("params")
    report: dict[str, Any] = {
        "akd_version": __version__,
        "method": spec.method,
        "spec": spec.model_dump(mode="json"),
        "dataset": ds.summary(),
        "preprocessing": ds.normalization,
        "input_contract": contract.to_dict(),
        "teacher": {
            **facts.teacher,
            "accuracy": facts.teacher_test_accuracy,
            "val_accuracy": facts.teacher_val_accuracy,
        },
        "student": {"arch": spec.student.arch, "params": student_params, **main.to_dict()},
        "baselines": {
            arm: summary.to_dict() for arm, summary in arms.items() if arm != spec.method
        },
        "params": {"teacher": teacher_params, "student": student_params},
        "compression": (teacher_params / student_params) if teacher_params else None,
        "onnx": onnx_info,
        "int8": int8,
        "measured": size_latency_table(facts.teacher, student_params, onnx_info, int8),
        "history": main.history,
        "warnings": list(facts.warnings),
        "versions": library_versions(),
        "runtime": runtime_facts(),
        "device": facts.device,
        "mixed_precision": facts.amp,
        "timings": {
            "teacher_cache_s": facts.cache_seconds,
            "teacher_cache_hit": facts.cache_hit,
            "train_s": {arm: s.train_seconds for arm, s in arms.items()},
        },
    }
    if facts.started is not None:
        report["timings"]["total_s"] = time.perf_counter() - facts.started
    write_model_card(out_dir, report, x_test[:1])  # one stored sample for the card's snippet
    atomic_write_json(out_dir / REPORT_JSON, report)  # once per run, complete
    return report


def _calibration(ds: Dataset, contract: InputContract, seed: int) -> np.ndarray | None:
    """Up to CALIBRATION_SAMPLES training samples as student.onnx takes them (None: raw input)."""
    if contract.raw_input:  # only the val and test splits are kept as stored
        return None
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(ds.x_train))[:CALIBRATION_SAMPLES]
    return np.ascontiguousarray(ds.x_train[np.sort(pick)], dtype=np.float32)


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that trained, exported and checked the student."""
    found = {"akd": __version__, "python": platform.python_version()}
    for name in ("torch", "numpy", "onnx", "onnxruntime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # not installed: nothing to state
            continue
    return found


def teacher_facts(teacher: Any, path: Path) -> dict[str, Any]:
    """Format, fingerprint, parameter count, file size and declared input of the teacher."""
    declared = teacher.declared_input  # ONNX teachers: the input the student takes over
    latency, note = teacher_latency(teacher)
    return {
        "format": teacher.format,
        "fingerprint": teacher.fingerprint,
        "params": teacher.param_count,  # counted where the model was loaded (the sandbox)
        "size_bytes": path.stat().st_size,
        "execution_provider": getattr(teacher, "execution_provider", None),
        "input": None
        if declared is None
        else {"name": declared.name, "shape": list(declared.shape), "dtype": declared.onnx_type},
        "latency": latency,
        "latency_note": note,
    }
