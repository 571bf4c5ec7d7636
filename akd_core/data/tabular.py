"""CSV datasets: a header row, numeric feature columns and one label column."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from akd_core.archives import ArchiveLimits
from akd_core.data.checks import fail
from akd_core.data.dataset import RawData
from akd_core.errors import DatasetError
from akd_core.spec import DatasetSpec


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: Excel writes a BOM
            return [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise fail(path.name, f"is not a readable UTF-8 CSV file ({exc})") from exc


def _labels(raw: list[str]) -> tuple[np.ndarray, list[str]]:
    """Integer labels are used as class indices; any other labels are mapped to sorted names."""
    try:
        ints = [int(v) for v in raw]
    except ValueError:
        names = sorted(set(raw))
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in raw], np.int64), names
    y = np.array(ints, np.int64)
    return y, [str(i) for i in range(max(int(y.max()) + 1, 0))]


def read_csv(path: Path, spec: DatasetSpec, work_dir: Path, limits: ArchiveLimits) -> RawData:
    """Read a CSV table into (N, F) float features and integer labels."""
    source = path.name
    rows = _read_rows(path)
    if len(rows) < 2:
        raise fail(source, "needs a header row and at least one data row")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if spec.label_column not in header:
        raise DatasetError(
            f"dataset {source!r} has no column {spec.label_column!r}; its columns are "
            f"{header}; set dataset.label_column to the one holding the class",
            field="dataset.label_column",
        )
    label_at = header.index(spec.label_column)
    features = [i for i in range(len(header)) if i != label_at]
    if not features:
        raise fail(source, "has no feature column besides the label column")
    x = np.empty((len(body), len(features)), np.float32)
    raw_labels = []
    for r, row in enumerate(body):
        line = r + 2  # 1-based, after the header
        if len(row) != len(header):
            raise fail(
                source, f"line {line} has {len(row)} fields but the header has {len(header)}"
            )
        for j, col in enumerate(features):
            try:
                x[r, j] = float(row[col])
            except ValueError:
                raise fail(
                    source,
                    f"line {line}, column {header[col]!r}: {row[col]!r} is not a number "
                    "(feature columns must be numeric)",
                ) from None
        raw_labels.append(row[label_at].strip())
    if any(v == "" for v in raw_labels):
        raise fail(source, f"column {spec.label_column!r} has an empty label")
    y, classes = _labels(raw_labels)
    return RawData(x, y, classes, "features", source)
