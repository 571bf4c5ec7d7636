"""An ONNX text teacher (model.onnx + tokenizer files, zipped or as a folder): sandboxed,
its cached logits equal the torch teacher's, and malformed folders are refused by name."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from akd_core.cache import LogitCache
from akd_core.errors import SpecError, TeacherLoadError
from akd_core.limits import Limits
from akd_core.pipeline import run_job
from akd_core.spec import TeacherSpec, parse_spec
from akd_core.teachers import load_teacher
from akd_core.text.data import load_text_dataset, tokenizer_sha
from akd_core.text.hf_folder import check_hf_archive
from akd_core.text.hf_teacher import HfTeacher
from akd_core.text.tokens import load_tokenizer
from tests.akd_core.text_support import (
    onnx_teacher_folder,
    text_rows,
    trained_teacher,
    write_jsonl,
    zip_folder,
)

pytestmark = pytest.mark.slow  # a tiny teacher trained, exported and distilled (~30 s)

TINY_BERT = {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}


def _spec(root: Path, source: str, **extra) -> dict:
    spec = {
        "teacher": {"source": source, "format": "onnx"},
        "student": {"arch": "bert", "options": TINY_BERT},
        "dataset": {"source": f"file:{root / 'train.jsonl'}", "max_length": 32},
        "method": "kd",
        "annealing": {"tau_max": 2, "phase1_epochs": 6, "phase2_epochs": 0},
        "optimizer": {"lr": 3e-3, "batch_size": 16},
        "device": "cpu",
    }
    spec.update(extra)
    return spec


@functools.cache
def _run() -> tuple[Path, dict]:
    root = Path(tempfile.mkdtemp(prefix="akd-onnx-text-"))
    onnx_teacher_folder(root / "onnx_teacher")
    zip_folder(root / "onnx_teacher", root / "onnx_teacher.zip")
    write_jsonl(root / "train.jsonl", text_rows(200))
    spec = parse_spec(_spec(root, f"file:{root / 'onnx_teacher.zip'}"))
    return root, run_job(spec, root / "out", cache_dir=root / "cache")


def test_a_zipped_onnx_teacher_distils_and_its_cached_logits_are_the_torch_teachers():
    root, report = _run()
    assert report["teacher"]["format"] == "onnx" and report["teacher"]["accuracy"] > 0.9
    assert report["teacher"]["params"] > 0 and report["student"]["accuracy"] > 0.8
    assert report["text"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    # The logits the ONNX teacher left in the cache, against the torch teacher on the same tokens.
    (cached_file,) = [p for p in (root / "cache").glob("*.safetensors")
                      if set(LogitCache(root / "cache").get(p.stem) or {}) >= {"train", "val"}]  # fmt: skip
    cached = LogitCache(root / "cache").get(cached_file.stem)
    assert cached is not None
    tok = load_tokenizer(trained_teacher())
    spec = parse_spec(_spec(root, "file:x"))
    ds = load_text_dataset(spec.dataset, {"train": root / "train.jsonl"}, tok,
                           tokenizer_sha(trained_teacher()), [], spec.seed, root / "tokens")  # fmt: skip
    torch_teacher = HfTeacher("ref", trained_teacher(), torch.device("cpu"))
    for split, x in (("train", ds.x_train), ("val", ds.x_val), ("test", ds.x_test)):
        np.testing.assert_allclose(cached[split], torch_teacher.logits_for(x), atol=1e-4)
    assert len(ds.x_val) > 0 and cached["val"].shape == (len(ds.x_val), 2)


def test_an_onnx_teacher_folder_runs_in_the_sandbox_on_the_cli_path(tmp_path):
    root, _ = _run()
    teacher = load_teacher(TeacherSpec(source="file:x", format="onnx"), root / "onnx_teacher",
                           torch.device("cpu"))  # fmt: skip
    try:
        assert type(teacher).__name__ == "SandboxedTeacher" and teacher.format == "onnx"
        x = np.array([[[2, 9, 3, 0], [1, 1, 1, 0], [0, 0, 0, 0]]], np.int64)  # one padded row
        ref = HfTeacher("ref", trained_teacher(), torch.device("cpu")).logits_for(x)
        np.testing.assert_allclose(teacher.logits_for(x), ref, atol=1e-4)
    finally:
        teacher.release()


def test_shrink_teacher_with_an_onnx_teacher_is_refused_before_loading(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", text_rows(40))
    spec = _spec(tmp_path, "file:nothing-here.zip", student={"arch": "shrink-teacher"})
    with pytest.raises(SpecError) as err:
        run_job(parse_spec(spec), tmp_path / "out")
    assert err.value.field == "student.arch" and "use student.arch 'bert'" in err.value.message


def test_malformed_onnx_text_folders_are_refused_by_name(tmp_path):
    root, _ = _run()
    two = Path(shutil.copytree(root / "onnx_teacher", tmp_path / "two"))
    shutil.copy(two / "model.onnx", two / "other.onnx")
    with pytest.raises(TeacherLoadError, match=r"found 2 \.onnx files"):
        check_hf_archive(zip_folder(two, tmp_path / "two.zip"), Limits(), "onnx")
    pickled = Path(shutil.copytree(root / "onnx_teacher", tmp_path / "pickled"))
    (pickled / "extra.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(TeacherLoadError, match="pickled weights"):
        check_hf_archive(zip_folder(pickled, tmp_path / "p.zip"), Limits(), "onnx")
    no_tok = Path(shutil.copytree(root / "onnx_teacher", tmp_path / "no_tok"))
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(TeacherLoadError, match="no tokenizer.json found"):
        check_hf_archive(zip_folder(no_tok, tmp_path / "t.zip"), Limits(), "onnx")
    assert check_hf_archive(root / "onnx_teacher.zip", Limits(), "onnx") == {}


def test_an_onnx_file_without_token_inputs_is_refused_naming_them(tmp_path):
    root, _ = _run()
    folder = Path(shutil.copytree(root / "onnx_teacher", tmp_path / "image"))
    model = torch.nn.Linear(4, 2)
    torch.onnx.export(model, (torch.zeros(1, 4),), str(folder / "model.onnx"),
                      input_names=["pixels"], dynamo=False)  # fmt: skip
    write_jsonl(tmp_path / "train.jsonl", text_rows(40))
    with pytest.raises(TeacherLoadError) as err:
        run_job(parse_spec(_spec(tmp_path, f"file:{folder}")), tmp_path / "out")
    assert "input_ids, attention_mask" in err.value.message and "['pixels']" in err.value.message
