"""load_dataset on npz, CSV and builtin sources: validation, splits, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from akd_core.data import Dataset, load_dataset
from akd_core.errors import DatasetError
from akd_core.spec import DatasetSpec


def _spec(**kw) -> DatasetSpec:
    kw.setdefault("source", "upload:abc")
    return DatasetSpec(**kw)


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    return path


def _blobs(n: int = 120, f: int = 5, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, f)) * 3 + y[:, None] + 10
    return x.astype(np.float32), y


def _sizes(ds: Dataset) -> tuple[int, int, int]:
    return len(ds.y_train), len(ds.y_val), len(ds.y_test)


def test_npz_features_split_stratified_and_kept_as_stored(tmp_path: Path) -> None:
    x, y = _blobs()
    ds = load_dataset(_spec(), _npz(tmp_path / "d.npz", x=x, y=y), seed=0)
    assert ds.kind == "features" and ds.input_shape == (5,)
    assert ds.classes == ["0", "1", "2"] and ds.num_classes == 3
    assert sum(_sizes(ds)) == 120 and len(ds.y_test) == 24 and len(ds.y_val) == 10
    assert set(np.bincount(ds.y_test)) == {8}  # 20% of each class of 40
    assert ds.normalization == {
        "mode": "none", "mean": None, "std": None, "scale": None, "scale_divisor": None,
        "origin": "dataset.normalize",
    }  # fmt: skip
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    # Without normalisation each training row is one of the stored rows.
    stored = {r.tobytes() for r in x}
    assert all(r.tobytes() in stored for r in ds.x_train)
    summary = ds.summary()
    assert summary["sizes"] == {"train": 86, "val": 10, "test": 24}


def test_npz_given_splits_are_used_as_given(tmp_path: Path) -> None:
    x, y = _blobs(60)
    xv, yv = _blobs(9, seed=1)
    xt, yt = _blobs(12, seed=2)
    path = _npz(tmp_path / "d.npz", x=x, y=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    ds = load_dataset(_spec(), path, seed=3)
    assert _sizes(ds) == (60, 9, 12)
    np.testing.assert_array_equal(ds.x_test, xt)


def test_npz_nhwc_uint8_images_become_nchw_in_unit_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 6, 6, 3), dtype=np.uint8)
    y = np.arange(40) % 2
    ds = load_dataset(_spec(normalize="none"), _npz(tmp_path / "i.npz", x=x, y=y), seed=0)
    assert ds.kind == "image" and ds.input_shape == (3, 6, 6)
    assert ds.normalization["scale"] == "0-1"
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    # A channel-first sample is the stored channel-last one, divided by 255.
    stored = {(s.transpose(2, 0, 1) / 255.0).astype(np.float32).tobytes() for s in x}
    assert all(s.tobytes() in stored for s in ds.x_train)


def test_images_default_to_the_data_as_stored(tmp_path: Path) -> None:
    """The teacher is fed what is stored: no normalisation unless dataset.normalize asks."""
    x = np.random.default_rng(1).normal(3.0, 5.0, size=(60, 2, 4, 4)).astype(np.float32)
    ds = load_dataset(_spec(), _npz(tmp_path / "i.npz", x=x, y=np.arange(60) % 4), seed=0)
    assert ds.kind == "image" and ds.normalization["mode"] == "none"
    stored = {s.tobytes() for s in x}
    assert all(s.tobytes() in stored for s in ds.x_train)


def test_train_mean_std_normalises_images_per_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2, 4, 4)).astype(np.float32) * np.array([5.0, 0.1]).reshape(
        1, 2, 1, 1
    )
    x += np.array([3.0, -7.0], np.float32).reshape(1, 2, 1, 1)
    path = _npz(tmp_path / "i.npz", x=x, y=np.arange(200) % 4)
    ds = load_dataset(_spec(normalize="train-mean-std"), path, seed=0)
    assert ds.normalization["mode"] == "train-mean-std"
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    # The statistics come from the training split only: the test split is not exactly 0/1.
    assert not np.allclose(ds.x_test.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.normalization["mean"], [3.0, -7.0], atol=0.5)


def test_constant_feature_does_not_divide_by_zero(tmp_path: Path) -> None:
    x, y = _blobs()
    x[:, 2] = 4.0
    ds = load_dataset(_spec(normalize="train-mean-std"), _npz(tmp_path / "d.npz", x=x, y=y), seed=0)
    assert np.all(np.isfinite(ds.x_train)) and np.all(ds.x_train[:, 2] == 0)


def test_explicit_normalize_is_applied_and_checked(tmp_path: Path) -> None:
    x = np.full((30, 2, 3), 5.0, np.float32)
    path = _npz(tmp_path / "s.npz", x=x, y=np.arange(30) % 3)
    ds = load_dataset(_spec(normalize={"mean": [1.0, 3.0], "std": [2.0, 4.0]}), path, seed=0)
    assert ds.kind == "signal"
    np.testing.assert_allclose(ds.x_val[:, 0], 2.0)
    np.testing.assert_allclose(ds.x_val[:, 1], 0.5)
    assert ds.normalization == {
        "mode": "explicit",
        "mean": [1.0, 3.0],
        "std": [2.0, 4.0],
        "scale": None,
        "scale_divisor": None,
        "origin": "dataset.normalize",
    }
    with pytest.raises(DatasetError, match="one value per channel; the data has 2") as info:
        load_dataset(_spec(normalize={"mean": [0.5, 0.5, 0.5], "std": [1, 1, 1]}), path, seed=0)
    assert info.value.field == "dataset.normalize"


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.array([[np.nan, 1.0]] * 10), "y": np.arange(10) % 2}, "NaN or infinite"),
        ({"x": np.zeros((10, 2)), "y": np.arange(9) % 2}, "10 samples but its labels have 9"),
        ({"x": np.zeros((10, 2)), "y": np.full(10, 0.5)}, "non-integer numbers"),
        ({"x": np.zeros((10, 2)), "y": np.zeros(10)}, "at least 2"),
        ({"x": np.zeros(10), "y": np.arange(10) % 2}, r"shape \(10,\)"),
        ({"x": np.zeros((10, 2))}, "no array 'y'"),
        (
            {"x": np.zeros((10, 2)), "y": np.arange(10) % 2, "classes": np.array(["a"])},
            r"label 1 is outside 0\.\.0",
        ),
        (
            {"x": np.zeros((10, 2)), "y": np.arange(10) % 3, "classes": np.array(["a", "b"])},
            r"label 2 is outside 0\.\.1; the dataset names 2 classes",
        ),
        (
            {
                "x": np.zeros((10, 2)),
                "y": np.arange(10) % 2,
                "x_test": np.zeros((4, 3)),
                "y_test": np.zeros(4),
            },
            r"x_test has samples of shape \(3,\)",
        ),
    ],
)
def test_bad_npz_is_refused_naming_file_and_reason(
    tmp_path: Path, arrays: dict, message: str
) -> None:
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(_spec(), path, seed=0)
    assert "'bad.npz'" in info.value.message


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "obj.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4) % 2)
    with pytest.raises(DatasetError, match="without pickles"):
        load_dataset(_spec(), path, seed=0)


def test_csv_with_string_labels_and_named_label_column(tmp_path: Path) -> None:
    rows = ["a,species,b"] + [f"{i},{['setosa', 'virginica'][i % 2]},{i * 0.5}" for i in range(40)]
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(_spec(label_column="species"), path, seed=0)
    assert ds.classes == ["setosa", "virginica"] and ds.input_shape == (2,)
    assert sum(_sizes(ds)) == 40
    # Labels follow the sorted class names: odd rows (virginica) have an odd first feature.
    assert np.all((ds.x_train[:, 0] % 2 == 1) == (ds.y_train == 1))


def test_csv_errors_name_the_column_or_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("f1,f2,label\n1,2,0\n3,x,1\n")
    with pytest.raises(DatasetError, match="line 3, column 'f2': 'x' is not a number"):
        load_dataset(_spec(), path, seed=0)
    path.write_text("f1,f2,target\n1,2,0\n3,4,1\n")
    with pytest.raises(DatasetError, match="no column 'label'") as info:
        load_dataset(_spec(), path, seed=0)
    assert info.value.field == "dataset.label_column"


def test_jsonl_is_refused_for_now(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "hi", "label": 0}\n{"text": "yo", "label": 1}\n')
    with pytest.raises(
        DatasetError, match="'jsonl'.*not supported yet; accepted: npz, imagefolder, cifar, csv"
    ):
        load_dataset(_spec(), path, seed=0)


def test_builtin_digits_shape_splits_and_seeds() -> None:
    spec = _spec(source="builtin:digits")
    a = load_dataset(spec, None, seed=0)
    assert a.kind == "image" and a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert sum(_sizes(a)) == 1797
    assert a.normalization["mode"] == "none" and a.normalization["scale"] == "0-1"
    assert a.x_train.min() == 0.0 and a.x_train.max() == 1.0  # 0..16 stored, scaled into [0, 1]
    b = load_dataset(spec, None, seed=0)
    c = load_dataset(spec, None, seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.fingerprint == b.fingerprint
    assert not np.array_equal(a.y_train, c.y_train)
    assert a.fingerprint != c.fingerprint


def test_fingerprint_follows_bytes_and_settings(tmp_path: Path) -> None:
    x, y = _blobs()
    path = _npz(tmp_path / "d.npz", x=x, y=y)
    base = load_dataset(_spec(), path, seed=0).fingerprint
    assert load_dataset(_spec(source="upload:other"), path, seed=0).fingerprint == base
    assert load_dataset(_spec(val_fraction=0.2), path, seed=0).fingerprint != base
    assert load_dataset(_spec(normalize="train-mean-std"), path, seed=0).fingerprint != base
    x[0, 0] += 1
    assert load_dataset(_spec(), _npz(tmp_path / "e.npz", x=x, y=y), seed=0).fingerprint != base


def test_max_train_samples_caps_train_keeping_every_class(tmp_path: Path) -> None:
    x, y = _blobs(300, k=3)
    path = _npz(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(_spec(max_train_samples=30), path, seed=0)
    assert len(ds.y_train) == 30 and list(np.bincount(ds.y_train)) == [10, 10, 10]
    again = load_dataset(_spec(max_train_samples=30), path, seed=0)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    with pytest.raises(DatasetError, match="below the number of classes"):
        load_dataset(_spec(max_train_samples=2), path, seed=0)


def test_unknown_builtin_lists_available() -> None:
    with pytest.raises(DatasetError, match="unknown builtin dataset 'mnist'; available: digits"):
        load_dataset(_spec(source="builtin:mnist"), None, seed=0)


def test_sparse_npz_compressed_far_past_archive_ratio_still_loads(tmp_path: Path) -> None:
    x = np.zeros((4000, 200), np.float32)  # 3.2 MB of zeros deflate ~1000x
    x[np.arange(4000), np.arange(4000) % 200] = 1.0
    path = tmp_path / "sparse.npz"
    with path.open("wb") as fh:
        np.savez_compressed(fh, x=x, y=np.arange(4000) % 200 % 4)
    assert x.nbytes / path.stat().st_size > 200
    assert load_dataset(_spec(), path, seed=0).input_shape == (200,)
