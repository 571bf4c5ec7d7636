"""Labels are values mapped to class ids: the class count is never the largest label + 1."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from akd_core.data import load_dataset
from akd_core.errors import AKDError, DatasetError
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec


def _spec(**kw) -> DatasetSpec:
    return DatasetSpec(source="upload:abc", **kw)


def _csv(path: Path, labels: list[str]) -> Path:
    rows = ["f1,f2,label"] + [f"{i}.5,{i % 7},{lab}" for i, lab in enumerate(labels)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _npz(path: Path, y: np.ndarray, **extra: np.ndarray) -> Path:
    x = np.random.default_rng(0).normal(size=(len(y), 3)).astype(np.float32)
    np.savez(path, x=x, y=y, **extra)
    return path


def test_a_huge_label_is_one_class_of_its_own_not_ten_million(tmp_path: Path) -> None:
    # The audit's 250-byte CSV: 10^7 as a label took 16 s and 1.6 GiB, then failed.
    path = _csv(tmp_path / "d.csv", ["0", "1", "10000000"] * 10)
    t0 = time.perf_counter()
    ds = load_dataset(_spec(), path, seed=0)
    assert time.perf_counter() - t0 < 5
    assert ds.classes == ["0", "1", "10000000"]
    assert ds.num_classes == 3
    # Each row keeps its class: feature f1 = i + 0.5 and label index i % 3.
    rows = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    ids = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert np.array_equal((rows[:, 0] - 0.5).astype(int) % 3, ids)


def test_npz_labels_of_10_to_the_12_and_negative_ones_are_values(tmp_path: Path) -> None:
    y = np.array([10**12, -1, 5] * 10, np.int64)
    ds = load_dataset(_spec(), _npz(tmp_path / "d.npz", y), seed=0)
    assert ds.classes == ["-1", "5", "1000000000000"]  # numeric order, not string order
    assert sorted(set(ds.y_train.tolist())) == [0, 1, 2]


def test_labels_0_to_k_minus_1_keep_their_ids(tmp_path: Path) -> None:
    y = np.array([3, 0, 2, 1] * 10)
    ds = load_dataset(_spec(test_fraction=0.25), _npz(tmp_path / "d.npz", y), seed=0)
    assert ds.classes == ["0", "1", "2", "3"]
    x = np.load(tmp_path / "d.npz")["x"]
    # Find each test sample in the file: its id equals its stored label.
    for xi, yi in zip(ds.x_test, ds.y_test, strict=True):
        at = int(np.flatnonzero(np.all(np.isclose(x, xi), axis=1))[0])
        assert yi == y[at]


def test_string_labels_in_npz_are_sorted_names(tmp_path: Path) -> None:
    y = np.array(["dog", "cat", "emu"] * 10)
    ds = load_dataset(_spec(), _npz(tmp_path / "d.npz", y), seed=0)
    assert ds.classes == ["cat", "dog", "emu"]


def test_more_distinct_labels_than_the_class_cap_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", [str(i) for i in range(40)])
    # The CSV stream stops at the first label past the cap (line 7: the sixth label).
    with pytest.raises(DatasetError, match="line 7 .*distinct labels past .* limit of 5 classes"):
        load_dataset(_spec(), path, seed=0, limits=Limits(max_classes=5))
    path = _npz(tmp_path / "d.npz", np.arange(40) * 1000)
    with pytest.raises(DatasetError, match="40 distinct labels.*limit of 5 classes"):
        load_dataset(_spec(), path, seed=0, limits=Limits(max_classes=5))


def test_declared_num_classes_is_checked_against_the_labels(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.array([0, 1, 2] * 10))
    ds = load_dataset(_spec(num_classes=3), path, seed=0)
    assert ds.num_classes == 3
    bad = _npz(tmp_path / "e.npz", np.array([0, 1, 7] * 10))
    with pytest.raises(DatasetError, match=r"label 7 is outside 0\.\.2") as info:
        load_dataset(_spec(num_classes=3), bad, seed=0)
    assert info.value.field == "dataset.num_classes"
    words = _csv(tmp_path / "w.csv", ["a", "b"] * 10)
    with pytest.raises(DatasetError, match="label 'a' is not a class index"):
        load_dataset(_spec(num_classes=2), words, seed=0)


def test_declared_num_classes_must_match_named_classes(tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz", np.array([0, 1] * 10), classes=np.array(["no", "yes"]))
    assert load_dataset(_spec(), path, seed=0).classes == ["no", "yes"]
    with pytest.raises(DatasetError, match="num_classes is 3 but .* names 2 classes"):
        load_dataset(_spec(num_classes=3), path, seed=0)


def test_label_errors_are_akd_errors_so_the_job_is_not_retried(tmp_path: Path) -> None:
    # worker.runner retries only non-AKDError exceptions; bad data must fail once.
    path = _npz(tmp_path / "d.npz", np.array([0.5, 1.5] * 10))
    with pytest.raises(AKDError, match="non-integer numbers"):
        load_dataset(_spec(), path, seed=0)


def test_a_class_missing_from_training_is_named_by_its_label(tmp_path: Path) -> None:
    y = np.array([0, 1] * 10)
    path = _npz(
        tmp_path / "d.npz",
        y,
        x_test=np.zeros((4, 3), np.float32),
        y_test=np.array([0, 1, 10**7, 0]),
    )
    with pytest.raises(DatasetError, match="class\\(es\\) '10000000' have no training sample"):
        load_dataset(_spec(), path, seed=0)
