"""`akd distill` as a user runs it: a real process, a spec file, an output folder."""

from __future__ import annotations

import json
import subprocess
import sys

import onnxruntime as ort
import pytest

pytestmark = pytest.mark.slow


def _distill(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "akd_core.cli", *map(str, args), "--quiet"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_distill_digits_end_to_end(digits_teacher, tmp_path):
    spec = {
        "teacher": {"source": f"file:{digits_teacher}", "format": "onnx"},
        "student": {"arch": "cnn-tiny"},
        "dataset": {"source": "builtin:digits"},
        "annealing": {"tau_max": 2, "phase1_epochs": 4, "phase2_epochs": 2},
        "compare": ["student", "kd"],
        "export": {"int8": True, "int8_max_accuracy_drop": 1.0},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = _distill("spec.json", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "student" in proc.stdout and "onnx" in proc.stdout
    out = tmp_path / "run"
    report = json.loads((out / "report.json").read_text())
    for key in ("student", "kd"):
        assert 0.0 < report["baselines"][key]["accuracy"] <= 1.0
    assert report["student"]["params"] < 5000
    # cnn-tiny's INT8 copies are larger than FP32: one ships only when measured faster.
    int8 = report["int8"]
    assert (
        int8["kept"]
        == (out / "student.int8.onnx").exists()
        == any(c["passed"] and c["faster"] for c in int8["candidates"])
    )
    assert int8["kept"] or "neither faster nor smaller" in int8["reason"]

    # The downloaded student runs in onnxruntime and scores what the report says.
    from akd_core.data import load_dataset
    from akd_core.spec import DatasetSpec

    ds = load_dataset(DatasetSpec(source="builtin:digits"), None, 0)
    sess = ort.InferenceSession(str(out / "student.onnx"))
    logits = sess.run(None, {sess.get_inputs()[0].name: ds.x_test})[0]
    acc = float((logits.argmax(1) == ds.y_test).mean())
    assert acc == pytest.approx(report["student"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ('{"teacher": ', "not valid JSON"),
        (
            '{"teacher": {"source": "file:nope.onnx"}, "student": {"arch": "resnet8"},'
            ' "dataset": {"source": "builtin:digits"}}',
            "nope.onnx",
        ),
        (
            '{"teacher": {"source": "file:spec.json"}, "student": {"arch": "transformer9"},'
            ' "dataset": {"source": "builtin:digits"}, "annealing": {"tau_max": 3}}',
            "phase1_epochs (20) must be a multiple of tau_max (3)",
        ),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path, spec, words):
    (tmp_path / "spec.json").write_text(spec)
    proc = _distill("spec.json", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr
