"""Text datasets: csv/jsonl rows, labels mapped to ids, splits, tokens cached by hash, and
malformed files refused with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from akd_core.errors import DatasetError
from akd_core.spec import DatasetSpec
from akd_core.text.data import load_text_dataset
from tests.akd_core.text_support import make_tokenizer, sentences, text_rows, write_csv, write_jsonl


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer([t for t, _ in sentences(200)])


def _load(tok, tmp_path: Path, paths: dict[str, Path], labels: list[str] | None = None, **spec):
    ds_spec = DatasetSpec(source="file:x", **spec)
    return load_text_dataset(ds_spec, paths, tok, "tok", labels or [], 0, tmp_path / "cache")


def test_jsonl_is_split_labelled_and_tokenised_with_right_padding(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", text_rows(100))
    ds = _load(tokenizer, tmp_path, {"train": path}, max_length=16)
    assert ds.classes == ["neg", "pos"]  # string labels sorted, ids 0 and 1
    assert ds.inputs == ("input_ids", "attention_mask", "token_type_ids")
    sizes = (len(ds.y_train), len(ds.y_val), len(ds.y_test))
    assert sum(sizes) == 100 and sizes[1] >= 5 and sizes[2] >= 15
    assert ds.x_train.dtype == np.int64 and ds.x_train.shape[1] == 3
    assert ds.x_train.shape[2] <= 16  # truncated to max_length
    mask = ds.x_train[:, 1]
    # Right padding: every row's mask is ones then zeros, and padding holds the pad id.
    assert np.all(np.diff(mask, axis=1) <= 0)
    assert np.all(ds.x_train[:, 0][mask == 0] == tokenizer.pad_token_id)
    assert ds.x_train[0, 0, 0] == tokenizer.cls_token_id
    assert ds.summary()["label_map"] == {"neg": 0, "pos": 1}


def test_tokens_are_cached_by_hash_and_reused(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", text_rows(60))
    first = _load(tokenizer, tmp_path, {"train": path}, max_length=16)
    again = _load(tokenizer, tmp_path, {"train": path}, max_length=16)
    longer = _load(tokenizer, tmp_path, {"train": path}, max_length=32)
    assert (first.cache_hit, again.cache_hit, longer.cache_hit) == (False, True, False)
    assert np.array_equal(first.x_train, again.x_train) and first.fingerprint == again.fingerprint
    assert longer.fingerprint != first.fingerprint


def test_teacher_label_order_is_adopted_when_it_names_the_labels(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", text_rows(60))
    ds = _load(tokenizer, tmp_path, {"train": path}, labels=["pos", "neg"])
    assert ds.classes == ["pos", "neg"]
    ys = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert int((ys == 0).sum()) == sum(r["label"] == "pos" for r in text_rows(60))
    generic = _load(tokenizer, tmp_path, {"train": path}, labels=["LABEL_0", "LABEL_1"])
    assert generic.classes == ["neg", "pos"]


def test_csv_with_pairs_split_column_and_separate_test_file(tokenizer, tmp_path):
    rows = [[t, t.split()[0], lab, "train" if i < 40 else "dev"]
            for i, (t, lab) in enumerate(sentences(50))]  # fmt: skip
    train = write_csv(tmp_path / "train.csv", ["sentence", "second", "y", "part"], rows)
    test = write_csv(tmp_path / "test.csv", ["sentence", "second", "y", "part"],
                     [[t, "x", lab, ""] for t, lab in sentences(12, seed=3)])  # fmt: skip
    ds = _load(tokenizer, tmp_path, {"train": train, "test": test}, text_column="sentence",
               text_pair_column="second", label_column="y", split_column="part")  # fmt: skip
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (40, 10, 12)
    # A pair puts its second text in segment 1.
    assert ds.x_train[:, 2].max() == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"text": "good day", "label": "pos"}\n{"label": "neg"}\n', "line 2: has no 'text'"),
        ('{"text": "good day", "label": "pos"}\n[1, 2]\n', "line 2: must be a JSON object"),
        ('{"text": "good day", "label": "pos"}\n{"text": "x"\n', "line 2: is not valid JSON"),
        ("\n\n", "is empty"),
    ],
)
def test_malformed_jsonl_is_refused_with_file_and_line(tokenizer, tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        _load(tokenizer, tmp_path, {"train": path}, format="jsonl")
    assert "'bad.jsonl'" in err.value.message and expected in err.value.message


def test_wrong_encoding_names_the_line(tokenizer, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\ngood day,pos\ncaf\xe9 sad,neg\n")
    with pytest.raises(DatasetError, match=r"'latin.csv', line 3: is not UTF-8"):
        _load(tokenizer, tmp_path, {"train": path}, format="csv")


def test_unknown_label_in_a_validation_file_is_refused_with_its_line(tokenizer, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", text_rows(40))
    val = write_jsonl(tmp_path / "val.jsonl", [*text_rows(3), {"text": "odd", "label": "meh"}])
    with pytest.raises(DatasetError) as err:
        _load(tokenizer, tmp_path, {"train": train, "val": val})
    assert "'val.jsonl', line 4: label 'meh' is unknown" in err.value.message
    assert err.value.field == "dataset.label_column"


def test_missing_text_column_names_the_field(tokenizer, tmp_path):
    path = write_csv(tmp_path / "t.csv", ["body", "label"], [["good", "pos"], ["bad", "neg"]])
    with pytest.raises(DatasetError) as err:
        _load(tokenizer, tmp_path, {"train": path})
    assert err.value.field == "dataset.text_column" and "line 2" in err.value.message


def test_bad_split_value_is_refused(tokenizer, tmp_path):
    rows = [[t, lab, "holdout"] for t, lab in sentences(10)]
    path = write_csv(tmp_path / "s.csv", ["text", "label", "split"], rows)
    with pytest.raises(DatasetError, match="line 2: split 'holdout'"):
        _load(tokenizer, tmp_path, {"train": path}, split_column="split")


def test_row_cap_is_respected(tokenizer, tmp_path):
    from akd_core.limits import Limits

    path = write_jsonl(tmp_path / "train.jsonl", text_rows(30))
    spec = DatasetSpec(source="file:x")
    with pytest.raises(DatasetError, match="past 20 rows"):
        load_text_dataset(spec, {"train": path}, tokenizer, "t", [], 0, tmp_path,
                          Limits(csv_max_rows=20))  # fmt: skip
