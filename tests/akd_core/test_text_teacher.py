"""hf teachers: a transformers folder (zip, tar or folder) loaded offline in the sandbox;
pickled weights, remote code, code files and a missing tokenizer are refused."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from akd_core.errors import SpecError, TeacherLoadError
from akd_core.limits import Limits
from akd_core.spec import TeacherSpec
from akd_core.teachers import load_teacher
from akd_core.text.hf_folder import open_hf_folder
from akd_core.text.tokens import encode, load_tokenizer
from tests.akd_core.text_support import (
    copy_teacher,
    hub_cache,
    offline_hub,
    trained_teacher,
    zip_folder,
)

CPU = torch.device("cpu")


def _open(path: Path, work: Path, source: str = "file:x"):
    return open_hf_folder(source, path, work, Limits())


def test_zip_upload_loads_in_the_sandbox_and_matches_the_model(tmp_path):
    folder = trained_teacher()
    opened = _open(zip_folder(folder, tmp_path / "teacher.zip"), tmp_path / "work")
    assert opened.model_type == "bert" and opened.fingerprint == _open(folder, tmp_path).fingerprint
    tok = load_tokenizer(opened.root)
    x = encode(tok, ["happy warm day", "the rain was cold and sad today"], None, 32)
    pairs = encode(tok, ["happy day", "sad day it was"], ["very good", "awful"], 32)
    teacher = load_teacher(TeacherSpec(source="file:x", format="hf"), opened.root, CPU)
    try:
        logits = teacher.logits_for(x)
        pair_logits = teacher.logits_for(pairs)
        assert teacher.format == "hf" and teacher.param_count and teacher.param_count > 10_000
    finally:
        teacher.release()
    from transformers import AutoModelForSequenceClassification

    ref = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        for got, arr in ((logits, x), (pair_logits, pairs)):  # pairs: token types matter
            t = torch.from_numpy(arr)
            want = ref(input_ids=t[:, 0], attention_mask=t[:, 1], token_type_ids=t[:, 2]).logits
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert logits.argmax(1).tolist() == [1, 0]  # pos, neg


def test_tar_upload_is_unpacked_member_by_member(tmp_path):
    tar = tmp_path / "teacher.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(trained_teacher(), arcname="model")
    assert (_open(tar, tmp_path / "w").root / "config.json").is_file()


def test_pickled_weights_are_refused_with_how_to_convert(tmp_path):
    folder = copy_teacher(tmp_path / "t")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(TeacherLoadError) as err:
        _open(zip_folder(folder, tmp_path / "t.zip"), tmp_path / "w")
    assert "pytorch_model.bin" in err.value.message
    assert "save_pretrained(dir, safe_serialization=True)" in err.value.message


def test_a_config_that_needs_remote_code_is_refused(tmp_path):
    folder = copy_teacher(tmp_path / "t")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.Evil"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(TeacherLoadError, match="auto_map.*trust_remote_code"):
        _open(folder, tmp_path / "w")


def test_code_files_and_unknown_model_types_are_refused(tmp_path):
    folder = copy_teacher(tmp_path / "t")
    (folder / "modeling_x.py").write_text("import os\n")
    with pytest.raises(TeacherLoadError, match="'modeling_x.py' is code"):
        _open(folder, tmp_path / "w")
    (folder / "modeling_x.py").unlink()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(TeacherLoadError, match="model_type 'gpt2'; supported: bert"):
        _open(folder, tmp_path / "w")


def test_missing_tokenizer_or_safetensors_is_refused(tmp_path):
    folder = copy_teacher(tmp_path / "t")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(TeacherLoadError, match="no tokenizer.json"):
        _open(folder, tmp_path / "w")
    folder = copy_teacher(tmp_path / "u")
    (folder / "model.safetensors").unlink()
    with pytest.raises(TeacherLoadError, match="no .safetensors weights"):
        _open(folder, tmp_path / "w2")


def test_hub_id_not_in_the_offline_cache_is_a_clear_error(tmp_path, monkeypatch):
    offline_hub(monkeypatch, hub_cache(tmp_path / "hub", "someorg/other", trained_teacher()))
    with pytest.raises(TeacherLoadError) as err:
        open_hf_folder("hf:someorg/somemodel", None, tmp_path / "w", Limits())
    assert err.value.field == "teacher.source"
    assert "'someorg/somemodel' is not available here" in err.value.message
    assert "hub cache (HF_HOME)" in err.value.message and "zip or tar" in err.value.message


def test_a_hub_id_loads_from_the_offline_hub_cache_as_plain_checked_files(tmp_path, monkeypatch):
    folder = copy_teacher(tmp_path / "t")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # in the cache, never copied
    offline_hub(monkeypatch, hub_cache(tmp_path / "hub", "someorg/tiny-bert", folder))
    opened = open_hf_folder("hf:someorg/tiny-bert", None, tmp_path / "w", Limits())
    names = sorted(p.name for p in opened.root.iterdir())
    assert "model.safetensors" in names and "pytorch_model.bin" not in names
    assert not any(p.is_symlink() for p in opened.root.iterdir())
    assert opened.fingerprint == _open(trained_teacher(), tmp_path / "w2").fingerprint


def test_an_hf_teacher_with_an_image_student_names_the_student(tmp_path):
    from akd_core.teachers import load_teacher_in_process

    with pytest.raises(TeacherLoadError) as err:
        load_teacher_in_process(TeacherSpec(source="file:x"), zip_folder(
            trained_teacher(), tmp_path / "t.zip"), CPU)  # fmt: skip
    assert err.value.field == "student.arch" and "'bert' or 'shrink-teacher'" in err.value.message
    assert SpecError  # the spec-level refusal is tested in test_text_pipeline


def test_archives_are_checked_member_by_member_without_extracting(tmp_path):
    from akd_core.text.hf_folder import check_hf_archive

    good = zip_folder(trained_teacher(), tmp_path / "good.zip")
    assert check_hf_archive(good, Limits())["model_type"] == "bert"
    folder = copy_teacher(tmp_path / "evil")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(TeacherLoadError, match="'pytorch_model.bin' holds pickled weights"):
        check_hf_archive(zip_folder(folder, tmp_path / "evil.zip"), Limits())
    (folder / "pytorch_model.bin").unlink()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"x": "y.Z"}}))
    with pytest.raises(TeacherLoadError, match="auto_map"):
        check_hf_archive(zip_folder(folder, tmp_path / "remote.zip"), Limits())
    with pytest.raises(TeacherLoadError, match="past the limit|members|was refused"):
        check_hf_archive(good, Limits(max_members=2))


def test_loading_and_writing_hf_folders_print_no_transformers_bars(tmp_path, capfd):
    from transformers.utils import logging as hf_logging

    from akd_core.text.hf_teacher import load_hf_classifier

    folder = trained_teacher()  # built (and saved, bars and all) by the test's own support
    capfd.readouterr()
    hf_logging.enable_progress_bar()  # as in a fresh process, whatever ran before
    model = load_hf_classifier(folder, CPU)
    model.save_pretrained(str(tmp_path / "saved"), safe_serialization=True)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err
