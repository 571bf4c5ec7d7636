"""Text students: `bert` sized by its options on the teacher's vocabulary, `shrink-teacher`
copying the teacher's embeddings and every k-th layer; counts match the torch-free formula."""

from __future__ import annotations

import pytest
import torch

from akd_core.errors import SpecError
from akd_core.limits import Limits
from akd_core.text.hf_folder import open_hf_folder
from akd_core.text.names import text_student_params
from akd_core.text.students import build_text_student, shrink_layers
from akd_core.text.tokens import encode, load_tokenizer
from tests.akd_core.text_support import trained_teacher

CLASSES = ["neg", "pos"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return open_hf_folder("file:x", trained_teacher(), tmp_path_factory.mktemp("w"), Limits())


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_bert_defaults_are_bert_small_on_the_teachers_vocabulary(folder):
    student = build_text_student("bert", {}, folder, CLASSES, 0, True, 32)
    cfg = student.hf.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (4, 256, 4)
    assert cfg.intermediate_size == 1024 and cfg.vocab_size == folder.config["vocab_size"]
    assert cfg.id2label == {0: "neg", 1: "pos"}
    assert _count(student) == text_student_params("bert", {}, folder.config, 2)
    small = {"layers": 1, "hidden": 16, "heads": 2, "intermediate": 32}
    tiny = build_text_student("bert", small, folder, CLASSES, 0, True, 32)
    assert _count(tiny) == text_student_params("bert", small, folder.config, 2)


def test_shrink_teacher_copies_embeddings_head_and_every_kth_layer(folder):
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(str(folder.root))
    student = build_text_student("shrink-teacher", {"layers": 2}, folder, CLASSES, 0, True, 32)
    assert shrink_layers(4, 2) == [0, 2] and shrink_layers(6, 4) == [0, 1, 2, 3]
    t, s = teacher.state_dict(), student.hf.state_dict()
    for i, j in enumerate([0, 2]):
        for name in ("attention.self.query.weight", "output.dense.weight"):
            assert torch.equal(
                s[f"bert.encoder.layer.{i}.{name}"], t[f"bert.encoder.layer.{j}.{name}"]
            )
    assert not torch.equal(s["bert.encoder.layer.1.output.dense.weight"],
                           t["bert.encoder.layer.1.output.dense.weight"])  # fmt: skip
    for name in (
        "bert.embeddings.word_embeddings.weight",
        "classifier.weight",
        "bert.pooler.dense.weight",
    ):
        assert torch.equal(s[name], t[name])
    assert student.hf.config.num_hidden_layers == 2
    assert _count(student) == text_student_params("shrink-teacher", {"layers": 2}, folder.config, 2)


def test_a_shrunk_teacher_keeps_most_of_its_accuracy_before_training(folder):
    student = build_text_student(
        "shrink-teacher", {"layers": 2}, folder, CLASSES, 0, True, 32
    ).eval()
    tok = load_tokenizer(folder.root)
    x = torch.from_numpy(
        encode(tok, ["happy sun day", "cold rain and gloom", "love it", "awful"], None, 32)
    )
    with torch.no_grad():
        assert student(x).argmax(1).tolist() == [1, 0, 1, 0]


def test_batches_are_trimmed_to_their_longest_row_without_changing_logits(folder):
    # The shrunk trained teacher: its logits are large enough for a lost token to show.
    student = build_text_student("shrink-teacher", {}, folder, CLASSES, 0, True, 32).eval()
    tok = load_tokenizer(folder.root)
    x = torch.from_numpy(encode(tok, ["good day", "bad"], None, 32))
    padded = torch.cat([x, torch.zeros((2, 3, 10), dtype=torch.int64)], dim=2)
    with torch.no_grad():
        torch.testing.assert_close(student(padded), student(x))
        full = student.hf(input_ids=x[:, 0], attention_mask=x[:, 1], token_type_ids=x[:, 2])
        torch.testing.assert_close(student(padded), full.logits)


@pytest.mark.parametrize(
    ("arch", "options", "field"),
    [
        ("shrink-teacher", {"layers": 5}, "student.options.layers"),
        ("shrink-teacher", {"width": 2}, "student.options"),
        ("bert", {"hidden": 30, "heads": 4}, "student.options.hidden"),
        ("bert", {"layers": 0}, "student.options.layers"),
    ],
)
def test_bad_options_are_refused_naming_the_field(folder, arch, options, field):
    with pytest.raises(SpecError) as err:
        build_text_student(arch, options, folder, CLASSES, 0, True, 32)
    assert err.value.field == field


def test_the_torch_free_name_checks_know_the_text_students():
    from akd_core.models.names import check_arch_name, check_arch_options, model_kind_ok

    check_arch_name("shrink-teacher")
    check_arch_options("bert", {"layers": 2, "hidden": 64})
    with pytest.raises(SpecError, match="accepted options: layers, hidden, heads, intermediate"):
        check_arch_options("bert", {"width": 2})
    with pytest.raises(SpecError, match="available: .*mlp, bert, shrink-teacher"):
        check_arch_name("bart")
    with pytest.raises(SpecError, match="unknown architecture 'bert'"):
        check_arch_name("bert", "teacher.arch")  # a text student is no registry teacher
    assert not model_kind_ok("bert", (64,))


def test_the_torch_free_spec_check_takes_text_students_and_their_option_values():
    from akd_core.preflight import check_spec
    from akd_core.spec import parse_spec

    def spec(options):
        return parse_spec({"teacher": {"source": "file:t", "format": "hf"},
                           "student": {"arch": "bert", "options": options},
                           "dataset": {"source": "file:d.jsonl"}})  # fmt: skip

    check_spec(spec({"layers": 2}))
    with pytest.raises(SpecError) as err:
        check_spec(spec({"hidden": 30, "heads": 4}))
    assert err.value.field == "student.options.hidden"
