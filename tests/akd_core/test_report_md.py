"""report.md renders the numbers of a report dict: verdict, inputs, tables, contract, snippet."""

from __future__ import annotations

import copy
from typing import Any

from akd_core.report_md import PLOT, render_markdown, write_model_card

HISTORY = [
    {"phase": 1, "epoch": 1, "T": 2, "phi": 0.5, "train_loss": 1.23456, "val_accuracy": 0.5},
    {"phase": 1, "epoch": 2, "T": 1, "phi": 1.0, "train_loss": 0.98765, "val_accuracy": 0.625},
    {"phase": 2, "epoch": 1, "T": None, "phi": None, "train_loss": 0.4321, "val_accuracy": 0.875},
]

REPORT: dict[str, Any] = {
    "method": "annealing",
    "spec": {"annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1}, "seed": 7},
    "teacher": {"format": "onnx", "accuracy": 0.9123},
    "student": {
        "arch": "resnet8",
        "params": 78_123,
        "accuracy": 0.8765,
        "best_phase": 2,
        "best_epoch": 1,
        "val_accuracy": 0.875,
    },
    "baselines": {
        "kd": {"accuracy": 0.8512, "history": HISTORY},
        "student": {"accuracy": 0.8034, "history": HISTORY},
    },
    "params": {"teacher": 1_234_567, "student": 78_123},
    "compression": 15.8031,
    "onnx": {
        "size_bytes": 312_456,
        "opset": 17,
        "latency_ms_batch1": 0.1234,
        "parity_max_abs_diff": 1.5e-6,
        "argmax_agreement": 1.0,
        "accuracy": 0.8765,
    },
    "int8": {
        "accuracy": 0.8611,
        "size_bytes": 90_001,
        "latency_ms_batch1": 0.0567,
        "kept": False,
        "reason": "INT8 validation accuracy 0.8000 is more than 0.0100 below FP32's 0.8750",
    },
    "preprocessing": {"mean": [0.5], "std": [0.25]},
    "dataset": {"input_shape": [3, 32, 32]},
    "history": HISTORY,
    "device": "cuda:0",
    "mixed_precision": "bfloat16",
    "timings": {"teacher_cache_hit": True, "teacher_cache_s": 1.234},
}


def test_accuracy_table_and_selection_sentence():
    md = render_markdown(REPORT)
    assert md.startswith("# Distilled student: resnet8\n")
    assert "| teacher (onnx) | 91.23% | 1,234,567 |" in md
    assert "| **student (resnet8, annealing)** | **87.65%** | 78,123 |" in md
    assert "| baseline: kd | 85.12% | 78,123 |" in md
    assert "| baseline: student | 80.34% | 78,123 |" in md
    assert "tau_max = 2, Phase 1 = 2 epochs, Phase 2 = 1 epochs" in md
    assert "every arm trained for 3 epochs on the same data, seed 7" in md
    assert "Compression: 15.8x fewer parameters than the teacher." in md
    assert "(phase 2, epoch 1, validation accuracy 87.50%)" in md


def test_onnx_int8_preprocessing_and_device_lines():
    md = render_markdown(REPORT)
    assert "`student.onnx`: 312,456 bytes, opset 17" in md
    assert "median latency at batch 1: 0.123 ms" in md
    assert "max |diff| 1.50e-06, argmax agreement 100.00%, ONNX accuracy 87.65%" in md
    assert "- INT8: accuracy 86.11%, 90,001 bytes, 0.057 ms at batch 1; not shipped: INT8" in md
    assert "not shipped: INT8 validation accuracy 0.8000 is more than 0.0100 below" in md
    assert '`{"mean": [0.5], "std": [0.25]}`; input shape [3, 32, 32]' in md
    assert "Device: cuda:0, mixed precision bfloat16. Teacher logits cache: hit in 1.23 s." in md
    kept = copy.deepcopy(REPORT)
    kept["int8"]["kept"] = True
    assert "kept as `student.int8.onnx`" in render_markdown(kept)


def test_history_table_has_one_row_per_epoch():
    md = render_markdown(REPORT)
    assert "| 1 | 1 | 2 | 0.5 | 1.2346 | 50.00% |" in md
    assert "| 1 | 2 | 1 | 1.0 | 0.9877 | 62.50% |" in md
    assert "| 2 | 1 | - | - | 0.4321 | 87.50% |" in md  # Phase 2 has no T and no Phi


def test_unknown_teacher_size_and_no_int8():
    r = copy.deepcopy(REPORT)
    r.update(compression=None, int8=None, mixed_precision=None)
    r["params"]["teacher"] = None
    r["timings"]["teacher_cache_hit"] = False
    md = render_markdown(r)
    assert "| teacher (onnx) | 91.23% | n/a |" in md
    assert "Compression: teacher parameter count unknown." in md
    assert "INT8" not in md and "mixed precision" not in md
    assert "Teacher logits cache: built in 1.23 s." in md


def test_model_card_files(tmp_path):
    write_model_card(tmp_path, REPORT)
    assert (tmp_path / "report.md").read_text() == render_markdown(REPORT)
    png = (tmp_path / PLOT).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def _judged(main: float, **baselines: float) -> dict[str, Any]:
    """REPORT with these test accuracies on a 400-sample test split."""
    r = copy.deepcopy(REPORT)
    r["student"]["accuracy"] = main
    r["baselines"] = {arm: {"accuracy": acc, "history": HISTORY} for arm, acc in baselines.items()}
    r["dataset"]["sizes"] = {"train": 1000, "val": 100, "test": 400}
    return r


def test_the_card_says_when_a_baseline_beat_the_student():
    md = render_markdown(_judged(0.8775, student=0.9, kd=0.85))
    assert (
        "- student-only beat annealing: 90.00% against 87.75% on the test split, 2.25 points "
        "(9 of 400 test samples)." in md
    )
    assert "- annealing beat KD: 87.75% against 85.00% on the test split, 2.75 points" in md
    assert "within the test split's resolution" not in md
    assert "- Resolution: the test split has 400 samples, so one test sample is 100/400 = " in md
    assert "0.25 points of accuracy." in md
    fair = render_markdown(_judged(0.9, student=0.8775))
    assert " beat annealing" not in fair and "annealing beat student-only: 90.00%" in fair


def test_a_one_sample_difference_is_within_the_resolution():
    md = render_markdown(_judged(0.8775, kd=0.88))
    assert "KD beat annealing: 88.00% against 87.75% on the test split, 0.25 points (1 of 400" in md
    assert (
        "- The difference between annealing and KD is within the test split's resolution: "
        "the test split cannot tell them apart." in md
    )


def test_cli_summary_carries_the_verdict_and_warnings(tmp_path):
    from akd_core.cli import summary_text

    r = _judged(0.8775, student=0.9)
    r["teacher"]["params"] = 1_234_567
    r["warnings"] = ["the teacher scores 100.00% on the test split (400 samples): ..."]
    text = summary_text(r, tmp_path)
    assert "student-only beat annealing: 90.00% against 87.75%" in text
    assert "Resolution: the test split has 400 samples" in text
    assert "Warning: the teacher scores 100.00% on the test split" in text


def test_inputs_contract_and_latency_table():
    r = copy.deepcopy(REPORT)
    r["teacher"].update(fingerprint="ab" * 32, size_bytes=4_000_000, latency_ms_batch1=2.5)
    r["dataset"].update(source="file:d.npz", sha256="cd" * 32, sizes={"test": 8})
    r["spec"]["dataset"] = {"source": "file:d.npz"}
    r["versions"] = {"akd": "0.1.0", "torch": "2.13.0", "onnxruntime": "1.32.0"}
    r["onnx"]["latency_ms_batch32_p90"] = 1.5  # a field report.json may gain: rendered too
    r["input_contract"] = {
        "name": "pixel_values", "dtype": "float32", "layout": "NCHW", "shape": [3, 32, 32],
        "value_range": [0.0, 1.0], "value_range_source": "nominal", "raw_input": False,
        "normalize": {"mode": "none"}, "standardize": {}, "steps_in_graph": ["standardise"],
    }  # fmt: skip
    md = render_markdown(r, with_sample=True)
    assert f"- Teacher: onnx, sha256 `{'ab' * 32}`" in md
    assert f"- Dataset: file:d.npz, sha256 `{'cd' * 32}`" in md
    assert (
        "- Seed: 7" in md
        and "- Library versions: akd 0.1.0, torch 2.13.0, onnxruntime 1.32.0" in md
    )
    assert '"source": "file:d.npz"' in md  # the spec as run, as JSON
    head = "| model | file bytes | parameters | latency batch1 (ms) | latency batch32 p90 (ms) |"
    assert head in md
    assert "| teacher | 4,000,000 | 1,234,567 | 2.500 | n/a |" in md
    assert "| student.onnx | 312,456 | 78,123 | 0.123 | 1.500 |" in md
    assert "| INT8 (not shipped) | 90,001 | n/a | 0.057 | n/a |" in md
    assert "- Input `pixel_values`: float32, layout NCHW, one sample of shape [3, 32, 32]" in md
    assert 'logits = session.run(None, {"pixel_values": x})[0]' in md
    for png in ("history.png", "val_accuracy.png", "accuracy_vs_size.png"):
        assert f"]({png})" in md


def _snippet(md: str) -> str:
    return md.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_snippet_runs_student_onnx_on_the_stored_sample(tmp_path):
    import json
    import subprocess
    import sys

    import numpy as np
    import onnxruntime as ort

    from tests.akd_core.report_support import write_report

    report = write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    proc = subprocess.run(
        [sys.executable, "-c", _snippet(md)], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    session = ort.InferenceSession(str(tmp_path / "student.onnx"))
    x = np.load(tmp_path / "sample.npy")
    assert x.shape == (1, *report["input_contract"]["shape"]) and x.dtype == np.float32
    labels = json.loads(session.get_modelmeta().custom_metadata_map["labels"])
    predicted = labels[int(session.run(None, {"input": x})[0].argmax(1)[0])]
    assert proc.stdout == f"prediction: {predicted}\n"
    # The sample is the first test sample, exactly as the student takes it.
    from akd_core.data import load_dataset
    from akd_core.spec import DatasetSpec

    ds = load_dataset(DatasetSpec(source="builtin:digits"), None, 0)
    np.testing.assert_array_equal(x[0], ds.x_test[0])
    assert "- annealing and student-only scored the same on the test split: 70.00%." in md
    assert "within the test split's resolution" in md and "100/359 = 0.28 points" in md


def _latency(median: float) -> dict[str, Any]:
    return {
        "threads": 1,
        **{
            f"batch{b}": {
                "batch": b,
                "median_ms": median * b,
                "p90_ms": median * b * 1.2,
                "runs": 50,
            }
            for b in (1, 32)
        },
    }


def test_measured_size_and_latency_table_and_int8_candidates():
    from akd_core.size_latency import size_latency_table

    r = copy.deepcopy(REPORT)
    teacher = {
        "format": "onnx",
        "params": 1_234_567,
        "size_bytes": 4_000_000,
        "latency": _latency(2.0),
    }
    onnx_info = {**r["onnx"], "file": "student.onnx", "latency": _latency(0.1)}
    cand = {
        "method": "static",
        "accuracy": 0.86,
        "agreement_with_fp32": 0.97,
        "size_bytes": 90_001,
        "latency": _latency(0.05),
        "verdict": "static QDQ: within 0.0100 of FP32; 2.00x faster",
    }
    int8 = {
        "kept": True,
        "method": "static",
        "file": "student.int8.onnx",
        "candidates": [cand],
        "accuracy": 0.86,
        "size_bytes": 90_001,
        "latency_ms_batch1": 0.05,
    }
    r["int8"] = int8
    r["measured"] = size_latency_table(teacher, 78_123, onnx_info, int8)
    md = render_markdown(r)
    head = (
        "| model | file | parameters | file bytes | batch 1 median / p90 (ms) | "
        "batch 32 median / p90 (ms) | speedup vs teacher (batch 1) | smaller than teacher | note |"
    )
    assert head in md
    assert (
        "| teacher (onnx) | - | 1,234,567 | 4,000,000 | 2.000 / 2.400 (50 runs) | 64.000 / 76.800 (50 runs) | n/a | n/a |"
        in md
    )
    assert (
        "| student | `student.onnx` | 78,123 | 312,456 | 0.100 / 0.120 (50 runs) | 3.200 / 3.840 (50 runs) | 20.0x | 12.8x |"
        in md
    )
    assert (
        "| student INT8 | `student.int8.onnx` | 78,123 | 90,001 | 0.050 / 0.060 (50 runs) |" in md
    )
    assert "| 40.0x | 44.4x | static quantization |" in md
    assert "Measured with onnxruntime, CPUExecutionProvider," in md
    assert (
        "- INT8 (static quantization): accuracy 86.00%, 90,001 bytes, 0.050 ms at batch 1; kept as"
        in md
    )
    assert (
        "  - candidate static: test accuracy 86.00%, agreement with FP32 97.00%, 90,001 bytes; static QDQ"
        in md
    )
