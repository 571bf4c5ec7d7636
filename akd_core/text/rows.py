"""Text rows from csv or jsonl files: (text, text pair, label, split) with file and line in errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.spec import DatasetSpec

MAX_TEXT_CHARS = 100_000  # one cell; tokenisation truncates to max_length tokens anyway
TEXT_FORMATS = ("csv", "jsonl")


@dataclass
class TextRows:
    """Columns of one text file, row-aligned; `lines` are the 1-based file lines."""

    source: str
    texts: list[str]
    pairs: list[str] | None
    labels: list[str]
    splits: list[str] | None
    lines: list[int]


def _fail(
    source: str, line: int | None, reason: str, field: str = "dataset.source"
) -> DatasetError:
    where = f"{source!r}, line {line}" if line is not None else repr(source)
    return DatasetError(f"dataset {where}: {reason}", field=field)


def _decoded_lines(path: Path, source: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, naming the first line that is not UTF-8."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _fail(
                    source,
                    number,
                    f"is not UTF-8 text (byte {exc.start}: {exc.reason}); save the file as UTF-8",
                ) from None
            yield number, text


def _records(path: Path, fmt: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) pairs of a jsonl file (one object a line) or a csv file with a header."""
    if fmt == "jsonl":
        for number, text in _decoded_lines(path, source):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _fail(source, number, f"is not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise _fail(
                    source, number, 'must be a JSON object, e.g. {"text": ..., "label": ...}'
                )
            yield number, record
        return
    numbered = list(_decoded_lines(path, source))  # csv cells may span lines: keep numbers
    reader = csv.reader(io.StringIO("".join(t for _, t in numbered), newline=""))
    header: list[str] | None = None
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                continue
            if len(row) != len(header):
                raise _fail(
                    source, number, f"has {len(row)} fields but the header has {len(header)}"
                )
            yield number, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise _fail(source, reader.line_num, f"is not readable CSV ({exc})") from None


def _cell(record: dict[str, Any], column: str, source: str, line: int, field: str,
          required: bool = True) -> str | None:  # fmt: skip
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if not required:
            return None
        raise _fail(source, line, f"has no {column!r} (set {field} to the column that holds it)",
                    field if column not in record else "dataset.source")  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(source, line, f"{column!r} is {type(value).__name__}, not text")
    text = str(value)
    if len(text) > MAX_TEXT_CHARS:
        raise _fail(source, line, f"{column!r} is longer than {MAX_TEXT_CHARS} characters")
    return text


def read_text_rows(
    path: Path, fmt: str, spec: DatasetSpec, limits: Limits, name: str | None = None
) -> TextRows:
    """Read every row's text, optional pair, label and split; refuse malformed rows by line."""
    source = name or path.name
    if fmt not in TEXT_FORMATS:
        raise DatasetError(f"text data must be csv or jsonl, got {fmt!r}", field="dataset.format")
    rows = TextRows(source, [], [] if spec.text_pair_column else None, [],
                    [] if spec.split_column else None, [])  # fmt: skip
    for line, record in _records(path, fmt, source):
        if len(rows.texts) >= limits.csv_max_rows:
            raise _fail(source, line, f"brings the file past {limits.csv_max_rows} rows")
        text = _cell(record, spec.text_column, source, line, "dataset.text_column")
        label = _cell(record, spec.label_column, source, line, "dataset.label_column")
        assert text is not None and label is not None
        rows.texts.append(text)
        rows.labels.append(label.strip())
        rows.lines.append(line)
        if rows.pairs is not None and spec.text_pair_column:
            pair = _cell(record, spec.text_pair_column, source, line, "dataset.text_pair_column")
            rows.pairs.append(pair or "")
        if rows.splits is not None and spec.split_column:
            split = _cell(record, spec.split_column, source, line, "dataset.split_column")
            rows.splits.append((split or "").strip().lower())
    if not rows.texts:
        raise _fail(source, None, "is empty: it holds no data rows (a header alone is not data)")
    return rows
