"""A text job end to end through run_job: the sandboxed hf teacher, a shrink-teacher student,
student.onnx with dynamic batch and sequence axes, tokenizer/ and student_hf/ that reload."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from akd_core.errors import SpecError, TeacherLoadError
from akd_core.pipeline import run_job
from akd_core.spec import parse_spec
from tests.akd_core.text_support import (
    copy_teacher,
    make_tokenizer,
    text_rows,
    trained_teacher,
    write_jsonl,
)

pytestmark = pytest.mark.slow  # one shared run: a tiny teacher trained, then distilled (~30 s)


def _spec(root: Path, **extra) -> dict:
    spec = {
        "teacher": {"source": f"file:{root / 'teacher'}"},
        "student": {"arch": "shrink-teacher", "options": {"layers": 2}},
        "dataset": {"source": f"file:{root / 'train.jsonl'}", "max_length": 32},
        "annealing": {"tau_max": 2, "phase1_epochs": 2, "phase2_epochs": 1},
        "compare": ["kd"],
        "device": "cpu",
    }
    spec.update(extra)
    return spec


@functools.cache
def _run() -> tuple[Path, dict]:
    root = Path(tempfile.mkdtemp(prefix="akd-text-run-"))
    shutil.copytree(trained_teacher(), root / "teacher")
    write_jsonl(root / "train.jsonl", text_rows(200))
    report = run_job(parse_spec(_spec(root)), root / "out", cache_dir=root / "cache")
    return root, report


def test_the_report_shows_teacher_student_and_the_glue_defaults():
    _, r = _run()
    assert r["teacher"]["format"] == "hf" and r["teacher"]["accuracy"] > 0.9
    assert r["student"]["arch"] == "shrink-teacher" and r["student"]["accuracy"] >= 0.9
    assert set(r["baselines"]) == {"kd"} and len(r["history"]) == 3
    assert r["params"]["student"] < r["params"]["teacher"]
    opt = r["spec"]["optimizer"]
    assert (opt["lr"], opt["schedule"], opt["batch_size"]) == (2e-5, "linear", 32)
    assert r["dataset"]["kind"] == "text" and r["dataset"]["label_map"] == {"neg": 0, "pos": 1}
    assert r["text"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert set(r["onnx"]["latency_ms_by_length"]) == {"32", "128"}
    assert all(v > 0 for v in r["onnx"]["latency_ms_by_length"].values())
    # Timed as akd_core.latency times every model: 1 thread, warm-up, median and p90.
    timed = r["onnx"]["latency_by_length"]
    assert (timed["threads"], timed["batch"], set(timed["by_length"])) == (1, 1, {"32", "128"})
    for n, v in timed["by_length"].items():
        assert 0 < v["median_ms"] <= v["p90_ms"] and v["runs"] >= 5
        assert v["median_ms"] == r["onnx"]["latency_ms_by_length"][n]


def test_student_onnx_has_dynamic_axes_and_matches_at_varied_lengths():
    import onnxruntime as ort

    root, r = _run()
    path = root / "out" / "student.onnx"
    proto = onnx.load(str(path))
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
              for i in proto.graph.input}  # fmt: skip
    assert inputs == {n: ["batch", "sequence"] for n in r["text"]["inputs"]}
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["label_map"]) == {"neg": 0, "pos": 1} and meta["max_length"] == "32"
    assert r["onnx"]["parity_max_abs_diff"] < 1e-4 and r["onnx"]["argmax_agreement"] == 1.0
    assert len(r["onnx"]["parity_sequence_lengths"]) >= 2
    # A deployment: tokenizer/ + student.onnx, one unpadded text at a time, any length.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(root / "out" / "tokenizer"))
    hf = AutoModelForSequenceClassification.from_pretrained(str(root / "out" / "student_hf"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for text in ("happy", "the day was cold and dark and very sad and it was a bad day", "love"):
        enc = tok(text, return_tensors="np")
        logits = session.run(None, {k: enc[k].astype(np.int64) for k in r["text"]["inputs"]})[0]
        with torch.no_grad():
            ref = hf(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
        np.testing.assert_allclose(logits, ref, atol=1e-4)
    assert hf.config.id2label == {0: "neg", 1: "pos"}
    assert r["text"]["student_hf_reload_max_abs_diff"] == 0.0


def test_the_shipped_tokenizer_tokenises_as_the_teachers():
    from transformers import AutoTokenizer

    root, _ = _run()
    shipped = AutoTokenizer.from_pretrained(str(root / "out" / "tokenizer"))
    teacher = AutoTokenizer.from_pretrained(str(root / "teacher"))
    text = "warm joy and a bright sun , unknownword"
    assert shipped(text)["input_ids"] == teacher(text)["input_ids"]
    with zipfile.ZipFile(root / "out" / "tokenizer.zip") as zf:  # the API's artifact
        assert "tokenizer.json" in zf.namelist()
    with zipfile.ZipFile(root / "out" / "student_hf.zip") as zf:
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(zf.namelist())


def test_report_json_passes_the_published_schema():
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    from akd_core.report_schema import report_json_schema

    root, _ = _run()
    report = json.loads((root / "out" / "report.json").read_text())
    jsonschema_rs.validator_for(report_json_schema()).validate(report)
    assert report["text"]["tokenizer"] == "tokenizer/"


def test_a_second_run_reuses_the_token_and_teacher_caches():
    root, _ = _run()
    spec = _spec(root, method="student", compare=[],
                 annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 0})  # fmt: skip
    r = run_job(parse_spec(spec), root / "again", cache_dir=root / "cache")
    assert r["timings"]["tokens_cache_hit"] is True and r["timings"]["teacher_cache_hit"] is True


def test_a_tokenizer_that_does_not_fit_the_vocabulary_is_refused_before_training(tmp_path):
    folder = copy_teacher(tmp_path / "teacher")
    words = [f"word{i}" for i in range(200)]
    make_tokenizer([" ".join(words)]).save_pretrained(str(folder))  # 205 tokens, vocab 30
    write_jsonl(tmp_path / "train.jsonl", text_rows(60))
    with pytest.raises(TeacherLoadError, match="tokenizer has 205 tokens but the teacher's vocab"):
        run_job(parse_spec(_spec(tmp_path)), tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_texts_longer_than_the_teachers_positions_are_refused(tmp_path):
    shutil.copytree(trained_teacher(), tmp_path / "teacher")
    write_jsonl(tmp_path / "train.jsonl", [{"text": " ".join(["good"] * 300), "label": "pos"},
                                           *text_rows(40)])  # fmt: skip
    spec = _spec(tmp_path)
    spec["dataset"]["max_length"] = 512
    with pytest.raises(SpecError) as err:
        run_job(parse_spec(spec), tmp_path / "out")
    assert err.value.field == "dataset.max_length" and "at most 128" in err.value.message


def test_an_image_student_for_an_hf_teacher_is_refused(tmp_path):
    spec = _spec(tmp_path, student={"arch": "mlp"}, teacher={"source": "file:x", "format": "hf"})
    with pytest.raises(SpecError) as err:
        run_job(parse_spec(spec), tmp_path / "out")
    assert err.value.field == "student.arch" and "'bert' or 'shrink-teacher'" in err.value.message


def test_report_md_states_the_text_contract_and_its_snippet_classifies_a_test_text():
    import subprocess
    import sys

    import onnxruntime as ort

    root, r = _run()
    out = root / "out"
    md = (out / "report.md").read_text()
    assert "## Text input: what `student.onnx` takes" in md
    assert "Inputs `input_ids`, `attention_mask`, `token_type_ids`: int64" in md
    assert "max_length = 32 tokens" in md and "0 = `neg`; 1 = `pos`" in md
    assert "(artifact `tokenizer.zip`)" in md and "at 32 tokens" in md
    assert "(onnxruntime, 1 intra-op thread, batch 1, median / p90)" in md
    lengths = r["text"]["token_lengths"]
    row = f"| test | {lengths['test']['texts']:,} | {lengths['test']['tokens']:,} |"
    assert row in md and lengths["test"]["texts"] == r["dataset"]["sizes"]["test"]
    assert 3 <= lengths["train"]["mean"] <= 16 and lengths["train"]["max"] <= 32
    code = md.split("## Run it", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # The snippet's text is the first test text: the student's prediction on its stored tokens.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    enc = tok([r["text"]["example_text"]], return_tensors="np")
    session = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {k: enc[k].astype(np.int64) for k in r["text"]["inputs"]})[0]
    assert proc.stdout == f"prediction: {['neg', 'pos'][int(logits.argmax(1)[0])]}\n"
    assert len(r["text"]["example_text"].split()) >= 2
