"""Dataset caps: CSV rows, columns and line length; .npz decompressed size and ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from akd_core.data import load_dataset
from akd_core.errors import DatasetError
from akd_core.limits import MIB, Limits
from akd_core.spec import DatasetSpec

SPEC = DatasetSpec(source="upload:abc")


def _csv(path: Path, rows: int, cols: int) -> Path:
    header = ",".join([f"f{j}" for j in range(cols)] + ["label"])
    body = [",".join([str(i + j) for j in range(cols)] + [str(i % 2)]) for i in range(rows)]
    path.write_text("\n".join([header, *body]) + "\n")
    return path


def test_csv_rows_past_the_cap_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", rows=40, cols=2)
    assert load_dataset(SPEC, path, 0, limits=Limits(csv_max_rows=40)).num_classes == 2
    with pytest.raises(DatasetError, match="more than 39 data rows"):
        load_dataset(SPEC, path, 0, limits=Limits(csv_max_rows=39))


def test_csv_columns_past_the_cap_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", rows=20, cols=6)
    assert load_dataset(SPEC, path, 0, limits=Limits(csv_max_columns=7)).input_shape == (6,)
    with pytest.raises(DatasetError, match="has 7 columns, past the limit of 6"):
        load_dataset(SPEC, path, 0, limits=Limits(csv_max_columns=6))


def test_a_csv_line_without_end_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,label\n" + "1" * 5000 + ",0\n1,1\n")
    with pytest.raises(DatasetError, match="a line longer than 1024 characters"):
        load_dataset(SPEC, path, 0, limits=Limits(csv_max_columns=4))


def test_csv_values_and_blank_lines_survive_streaming(tmp_path: Path) -> None:
    # More rows than one parse block, with blank lines and a BOM, as Excel writes them.
    rows = ["\ufeffa,b,label"] + [
        f"{i},{-i},{i % 3}" + ("\n" if i % 1000 == 0 else "") for i in range(9000)
    ]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(DatasetSpec(source="upload:abc", normalize="none"), path, 0)
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert len(x) == 9000 and np.array_equal(x[:, 1], -x[:, 0])
    assert np.array_equal(x[:, 0].astype(int) % 3, y)


def _zeros_npz(path: Path, mib: int) -> Path:
    n = mib * MIB // 4 // 256
    np.savez_compressed(path, x=np.zeros((n, 256), np.float32), y=np.arange(n) % 2)
    return path


def test_an_npz_of_zeros_past_the_ratio_floor_is_a_bomb(tmp_path: Path) -> None:
    # 72 MiB of zeros deflate ~1000x; the default caps refuse it before numpy inflates it.
    path = _zeros_npz(tmp_path / "bomb.npz", 72)
    assert path.stat().st_size < 200_000
    with pytest.raises(DatasetError, match="compression ratio of 10[0-9]{2}, past the cap of 100"):
        load_dataset(SPEC, path, 0)


def test_npz_ratio_floor_admits_small_arrays_and_the_total_cap_holds(tmp_path: Path) -> None:
    path = _zeros_npz(tmp_path / "small.npz", 2)  # 2 MiB of zeros: harmless, admitted
    assert load_dataset(SPEC, path, 0).num_classes == 2
    with pytest.raises(DatasetError, match="past the cap of 1048576 bytes"):
        load_dataset(SPEC, path, 0, limits=Limits(npz_max_total_bytes=MIB))
