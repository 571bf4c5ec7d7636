"""INT8 for text students: dynamic (MatMul) quantization, shipped only within tolerance AND
measured faster or smaller, with test accuracy reported; raw_input stays refused for text."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest

from akd_core.errors import SpecError
from akd_core.pipeline import run_job
from akd_core.preflight import check_spec
from akd_core.spec import parse_spec
from akd_core.text.export import text_onnx_accuracy
from tests.akd_core.text_support import text_rows, trained_teacher, write_jsonl

TINY_BERT = {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}


def _spec(root: Path, **export) -> dict:
    return {
        "teacher": {"source": f"file:{trained_teacher()}"},
        "student": {"arch": "bert", "options": TINY_BERT},
        "dataset": {"source": f"file:{root / 'train.jsonl'}", "max_length": 32},
        "method": "kd",
        "annealing": {"tau_max": 2, "phase1_epochs": 6, "phase2_epochs": 0},
        "optimizer": {"lr": 3e-3, "batch_size": 16},
        "export": export,
        "device": "cpu",
    }


@functools.cache
def _run() -> tuple[Path, dict]:
    root = Path(tempfile.mkdtemp(prefix="akd-text-int8-"))
    write_jsonl(root / "train.jsonl", text_rows(200))
    spec = parse_spec(_spec(root, int8=True, int8_max_accuracy_drop=0.05))
    return root, run_job(spec, root / "out", cache_dir=root / "cache")


@pytest.mark.slow
def test_dynamic_int8_is_judged_by_the_honest_rule_and_its_figures_are_real():
    root, r = _run()
    i8 = r["int8"]
    (cand,) = i8["candidates"]
    assert cand["method"] == "dynamic" and "static_qdq" in i8["skipped"]
    assert i8["latency_sequence_length"] == 128 and cand["latency"]["threads"] == 1
    within = i8["fp32_val_accuracy"] - cand["val_accuracy"] <= 0.05
    assert cand["passed"] == (within and (cand["faster"] or cand["smaller"]))
    assert i8["kept"] == cand["passed"]
    shipped = root / "out" / "student.int8.onnx"
    assert shipped.exists() == i8["kept"]
    if i8["kept"]:  # what the report says of the shipped file is what the file does
        assert i8["file"] == "student.int8.onnx" and "within 0.0500 of FP32" in i8["why"]
        assert cand["size_bytes"] == shipped.stat().st_size < r["onnx"]["size_bytes"]
    else:
        assert "dynamic (MatMul/Gemm)" in i8["reason"]
    md = (root / "out" / "report.md").read_text()
    assert "- INT8 (dynamic quantization)" in md or "- INT8: " in md


@pytest.mark.slow
def test_the_shipped_int8_accuracy_is_the_reported_test_accuracy():
    root, r = _run()
    if not r["int8"]["kept"]:
        pytest.skip("INT8 not shipped in this run: nothing to re-score")
    from akd_core.text.data import load_text_dataset, tokenizer_sha
    from akd_core.text.tokens import load_tokenizer

    spec = parse_spec(_spec(root))
    ds = load_text_dataset(spec.dataset, {"train": root / "train.jsonl"},
                           load_tokenizer(trained_teacher()), tokenizer_sha(trained_teacher()),
                           ["neg", "pos"], spec.seed, root / "tokens")  # fmt: skip
    acc = text_onnx_accuracy(root / "out" / "student.int8.onnx", ds.x_test, ds.y_test, ds.inputs)
    assert acc == r["int8"]["accuracy"]


def test_raw_input_is_refused_for_text_students_before_anything_runs(tmp_path):
    spec = parse_spec(_spec(tmp_path, raw_input=True))
    with pytest.raises(SpecError) as err:
        check_spec(spec)  # POST /jobs runs this: a 422 naming the field
    assert err.value.field == "export.raw_input" and "tokenizer/" in err.value.message
    with pytest.raises(SpecError) as err:
        run_job(spec, tmp_path / "out")
    assert err.value.field == "export.raw_input"
