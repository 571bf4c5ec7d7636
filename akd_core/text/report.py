"""The outputs of a text run: student.onnx, student.safetensors, tokenizer/, student_hf/,
report.json and report.md (the image run's report, with a `text` section)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from akd_core import __version__
from akd_core.events import Stage
from akd_core.export_metadata import spec_sha256
from akd_core.fileio import atomic_write, atomic_write_json
from akd_core.report import (
    REPORT_JSON,
    STUDENT_INT8_ONNX,
    STUDENT_ONNX,
    STUDENT_WEIGHTS,
    ArmSummary,
)
from akd_core.report_md import write_model_card
from akd_core.spec import JobSpec
from akd_core.text.data import TextDataset
from akd_core.text.export import (
    LATENCY_LENGTHS,
    export_text_onnx,
    text_latency,
    text_onnx_accuracy,
    text_parity,
    write_hf_folders,
)
from akd_core.text.int8 import text_int8
from akd_core.text.report_md import example_text, token_lengths
from akd_core.text.students import TokenClassifier, usable_positions


@dataclass(frozen=True)
class TextRunFacts:
    """What the text pipeline learned before and around training, for the report."""

    spec: JobSpec
    dataset: TextDataset
    teacher: dict[str, Any]
    teacher_val_accuracy: float
    teacher_test_accuracy: float
    device: str
    amp: str | None
    cache_seconds: float
    cache_hit: bool
    started: float
    tokenizer: Any


def text_contract(ds: TextDataset) -> dict[str, Any]:
    """How to feed student.onnx: the tokenizer folder, its inputs and the training length."""
    return {
        "inputs": list(ds.inputs),
        "dtype": "int64",
        "axes": ["batch", "sequence"],
        "tokenizer": "tokenizer/",
        "max_length": ds.max_length,
        "truncation": True,
        "padding": "right; any length up to max_length, attention_mask marks the tokens",
        "label_map": {name: i for i, name in enumerate(ds.classes)},
    }


def text_metadata(facts: TextRunFacts) -> dict[str, str]:
    """metadata_props of the text student.onnx (strings only)."""
    spec, ds = facts.spec, facts.dataset
    return {
        "akd.version": __version__,
        "akd.method": spec.method,
        "akd.student_arch": spec.student.arch,
        "akd.spec_sha256": spec_sha256(spec),
        "akd.teacher_sha256": str(facts.teacher.get("fingerprint", "")),
        "akd.dataset_sha256": ds.source_sha256,
        "akd.dataset_fingerprint": ds.fingerprint,
        "akd.text_contract": json.dumps(text_contract(ds), sort_keys=True),
        "labels": json.dumps(ds.classes),
        "label_map": json.dumps({name: i for i, name in enumerate(ds.classes)}),
        "input_names": json.dumps(list(ds.inputs)),
        "input_dtype": "int64",
        "max_length": str(ds.max_length),
        "tokenizer": "tokenizer/",
    }


def write_text_outputs(out_dir: Path, facts: TextRunFacts, student: TokenClassifier,
                       arms: dict[str, ArmSummary],
                       on_stage: Callable[[Stage, float], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Export the main arm's student, check it, write the report; returns report.json's dict."""
    spec, ds = facts.spec, facts.dataset
    student = student.cpu().eval()
    state = {k: v.contiguous() for k, v in student.state_dict().items()}
    atomic_write(out_dir / STUDENT_WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    onnx_path = export_text_onnx(student, ds.inputs, out_dir / STUDENT_ONNX, text_metadata(facts),
                                 spec.export.opset)  # fmt: skip
    if on_stage:
        on_stage("evaluating", 0.96)
    parity = text_parity(onnx_path, student, ds.x_test, ds.inputs)
    usable = usable_positions(student.hf.config)  # null latency past the model's positions
    timed = text_latency(onnx_path, ds.inputs, tuple(n for n in LATENCY_LENGTHS if n <= usable))
    latency = {str(n): timed["by_length"][str(n)]["median_ms"] if n <= usable else None
               for n in LATENCY_LENGTHS}  # fmt: skip
    onnx_info = {
        "file": STUDENT_ONNX,
        "opset": spec.export.opset,
        "size_bytes": onnx_path.stat().st_size,
        "parity_max_abs_diff": parity["max_abs_diff"],
        "argmax_agreement": parity["argmax_agreement"],
        "parity_sequence_lengths": parity["sequence_lengths"],
        "accuracy": text_onnx_accuracy(onnx_path, ds.x_test, ds.y_test, ds.inputs),
        # The longest measured length stands for batch-1 latency in the shared report fields.
        "latency_ms_batch1": [v for v in latency.values() if v is not None][-1],
        "latency_ms_by_length": latency,  # medians; p90, runs and threads in latency_by_length
        "latency_by_length": timed,
    }
    int8 = None
    if spec.export.int8:  # judged at the longest measured length, as latency_ms_batch1 is
        longest = max(int(n) for n, v in latency.items() if v is not None)
        int8 = text_int8(onnx_path, ds, longest, spec.export.int8_max_accuracy_drop,
                         out_dir / STUDENT_INT8_ONNX)  # fmt: skip
    folders = write_hf_folders(out_dir, student, facts.tokenizer, ds.x_test)
    main = arms[spec.method]
    n_student = sum(p.numel() for p in student.parameters())
    n_teacher = facts.teacher.get("params")
    contract = text_contract(ds)
    report: dict[str, Any] = {
        "akd_version": __version__,
        "method": spec.method,
        "spec": spec.model_dump(mode="json"),
        "dataset": ds.summary(),
        "preprocessing": {
            "tokenizer": contract["tokenizer"],
            "max_length": ds.max_length,
            "inputs": contract["inputs"],
        },  # fmt: skip
        "input_contract": None,  # the image contract; text inputs are described in `text`
        "text": {
            **contract,
            **folders,
            "token_lengths": {
                s: token_lengths(x, ds.max_length)
                for s, x in (("train", ds.x_train), ("val", ds.x_val), ("test", ds.x_test))
            },
            "example_text": example_text(facts.tokenizer, ds.x_test),
        },  # fmt: skip
        "teacher": {
            **facts.teacher,
            "accuracy": facts.teacher_test_accuracy,
            "val_accuracy": facts.teacher_val_accuracy,
        },  # fmt: skip
        "student": {"arch": spec.student.arch, "params": n_student, **main.to_dict()},
        "baselines": {a: s.to_dict() for a, s in arms.items() if a != spec.method},
        "params": {"teacher": n_teacher, "student": n_student},
        "compression": (n_teacher / n_student) if n_teacher else None,
        "onnx": onnx_info,
        "int8": int8,
        "history": main.history,
        "device": facts.device,
        "mixed_precision": facts.amp,
        "timings": {
            "teacher_cache_s": facts.cache_seconds,
            "teacher_cache_hit": facts.cache_hit,
            "tokens_cache_hit": ds.cache_hit,
            "train_s": {arm: s.train_seconds for arm, s in arms.items()},
            "total_s": time.perf_counter() - facts.started,
        },
    }
    write_model_card(out_dir, report)
    atomic_write_json(out_dir / REPORT_JSON, report)
    return report
