"""report.md renders the numbers of a given report dict, and history.png is a real plot."""

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
    assert "INT8 (dynamic quantization): accuracy 86.11%, 90,001 bytes, 0.057 ms" in md
    assert "not kept: INT8 validation accuracy 0.8000 is more than 0.0100 below" in md
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
