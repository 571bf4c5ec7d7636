"""CSV datasets: a header row, numeric feature columns and one label column, read as a stream."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from akd_core.data.checks import fail
from akd_core.data.dataset import RawData
from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

BLOCK_ROWS = 8192  # rows parsed into one preallocated float32 block
CHARS_PER_COLUMN = 256  # a line longer than columns x this is not a table row


def _lines(fh: IO[str], max_chars: int, source: str) -> Iterator[str]:
    """The file's lines, refusing one longer than `max_chars` before it is all in memory."""
    while line := fh.readline(max_chars + 1):
        if len(line) > max_chars and not line.endswith("\n"):
            raise fail(source, f"has a line longer than {max_chars} characters")
        yield line


def _rows(fh: IO[str], limits: Limits, source: str) -> Iterator[list[str]]:
    max_chars = limits.csv_max_columns * CHARS_PER_COLUMN
    try:
        for row in csv.reader(_lines(fh, max_chars, source)):
            if any(cell.strip() for cell in row):
                yield row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise fail(source, f"is not a readable UTF-8 CSV file ({exc})") from exc


def _label_values(names: list[str]) -> np.ndarray:
    """The distinct labels as int64 when all are integers (numeric order), else as strings."""
    try:
        return np.array([int(v) for v in names], np.int64)
    except (ValueError, OverflowError):
        return np.array(names, dtype=str)


class _Table:
    """Float32 feature blocks and label codes, grown row by row (no list of Python rows)."""

    def __init__(self, width: int, limits: Limits, source: str) -> None:
        self.width, self.limits, self.source = width, limits, source
        self.blocks: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.n = 0
        self.label_ids: dict[str, int] = {}

    def add(self, features: list[float], label: str, line: int) -> None:
        if self.n >= self.limits.csv_max_rows:
            raise fail(self.source, f"has more than {self.limits.csv_max_rows} data rows")
        at = self.n % BLOCK_ROWS
        if at == 0:
            self.blocks.append(np.empty((BLOCK_ROWS, self.width), np.float32))
            self.codes.append(np.empty(BLOCK_ROWS, np.int32))
        code = self.label_ids.setdefault(label, len(self.label_ids))
        if len(self.label_ids) > self.limits.max_classes:
            raise fail(
                self.source,
                f"line {line} brings the number of distinct labels past the server's limit "
                f"of {self.limits.max_classes} classes; labels are class names, not targets",
            )
        self.blocks[-1][at] = features
        self.codes[-1][at] = code
        self.n += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) float32 features and (N,) label values."""
        x = np.concatenate(self.blocks)[: self.n] if self.blocks else np.empty((0, self.width))
        codes = np.concatenate(self.codes)[: self.n] if self.codes else np.empty(0, np.int32)
        return x, _label_values(list(self.label_ids))[codes]


def _parse(
    row: list[str], features: list[int], header: list[str], source: str, line: int
) -> list[float]:
    out = []
    for col in features:
        try:
            out.append(float(row[col]))
        except ValueError:
            raise fail(
                source,
                f"line {line}, column {header[col]!r}: {row[col][:40]!r} is not a number "
                "(feature columns must be numeric)",
            ) from None
    return out


def read_csv(path: Path, spec: DatasetSpec, work_dir: Path, limits: Limits) -> RawData:
    """Stream a CSV table into (N, F) float features and label values (rows, columns capped)."""
    source = path.name
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: Excel writes a BOM
        rows = _rows(fh, limits, source)
        first = next(rows, None)
        if first is None:
            raise fail(source, "needs a header row and at least one data row")
        header = [h.strip() for h in first]
        if len(header) > limits.csv_max_columns:
            raise fail(
                source, f"has {len(header)} columns, past the limit of {limits.csv_max_columns}"
            )
        if spec.label_column not in header:
            raise DatasetError(
                f"dataset {source!r} has no column {spec.label_column!r}; its columns are "
                f"{header[:20]}; set dataset.label_column to the one holding the class",
                field="dataset.label_column",
            )
        label_at = header.index(spec.label_column)
        features = [i for i in range(len(header)) if i != label_at]
        if not features:
            raise fail(source, "has no feature column besides the label column")
        table = _Table(len(features), limits, source)
        for line, row in enumerate(rows, start=2):  # 1-based, after the header
            if len(row) != len(header):
                raise fail(
                    source, f"line {line} has {len(row)} fields but the header has {len(header)}"
                )
            label = row[label_at].strip()
            if not label:
                raise fail(source, f"line {line}: column {spec.label_column!r} has an empty label")
            table.add(_parse(row, features, header, source, line), label, line)
    if table.n == 0:
        raise fail(source, "needs a header row and at least one data row")
    x, y = table.arrays()
    return RawData(x, y, [], "features", source)
