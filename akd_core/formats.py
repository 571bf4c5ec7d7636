"""Content sniffing: what a teacher or dataset file really is, from its bytes (no torch here)."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

from akd_core.archives import ARCHIVE_READ_ERRORS
from akd_core.errors import DatasetError, TeacherLoadError
from akd_core.spec import DATASET_EXTENSIONS, TEACHER_EXTENSIONS, DatasetFormat, TeacherFormat
from akd_core.zipdir import read_zip_directory

# Full ONNX parses load the whole protobuf into memory; past this size the field-tag check
# alone decides (a multi-GB model is not parsed just to be named).
ONNX_PARSE_MAX_BYTES = 512 * 1024 * 1024
# Sniffing reads a bounded number of archive members and text lines, never the whole file.
MAX_SNIFF_MEMBERS = 256
TEXT_SNIFF_BYTES = 64 * 1024
TEXT_SNIFF_LINES = 20
# A compressed tar is read in order: reaching a member header means inflating everything
# before it. Sniffing stops before a header past MAX_SNIFF_BYTES decompressed (CIFAR-10's
# 163 MiB tar puts data_batch_1 last) or past SNIFF_MAX_RATIO x the file's size: a 4 KB
# tar.bz2 declaring 3 GiB is named "tar" after its first header, and check_archive refuses it.
MAX_SNIFF_BYTES = 256 * 1024 * 1024
SNIFF_MAX_RATIO = 200
# zipfile parses a zip's whole central directory; past this size (~100k entries) sniffing
# names the file "zip" without listing it (an .npz or TorchScript file is far smaller).
MAX_SNIFF_ZIP_DIRECTORY = 16 * 1024 * 1024

# The spec's Literals are the one list of formats; these are their values, in order.
TEACHER_FORMATS: tuple[str, ...] = get_args(TeacherFormat)
DATASET_FORMATS: tuple[str, ...] = get_args(DatasetFormat)

DESCRIPTIONS = {
    "onnx": "an ONNX model",
    "torchscript": "a TorchScript archive",
    "pickle": "a Python pickle",
    "safetensors": "a safetensors file",
    "npz": "a NumPy .npz archive",
    "zip": "a zip archive",
    "tar": "a tar archive",
    "cifar": "a CIFAR python archive",
    "csv": "a CSV table",
    "jsonl": "a JSON-lines file",
    "unknown": "of no recognised format",
    "directory": "a directory",
}
_CIFAR10_MEMBERS = {"data_batch_1", "test_batch"}
_CIFAR100_MEMBERS = {"train", "test"}
# First bytes of a zip (a local file header, or the end record of an empty zip) and of the
# compressed streams tarfile can open (gzip, bzip2, xz); plain tar says "ustar" at 257.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _is_tar_head(head: bytes) -> bool:
    return head.startswith(COMPRESSED_MAGIC) or head[257:262] == b"ustar"


def looks_like_archive(path: Path) -> bool:
    """Whether the file starts like a zip, tar or compressed stream (whether or not it opens)."""
    with Path(path).open("rb") as fh:
        head = fh.read(512)
    return head.startswith(ZIP_MAGIC) or _is_tar_head(head)


def sniff(path: Path) -> str:
    """Name the format of a file from its content (one of DESCRIPTIONS' keys but 'directory')."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(TEXT_SNIFF_BYTES)
    if not head:
        return "unknown"
    if head.startswith(ZIP_MAGIC):
        return _sniff_zip(path)
    if _is_safetensors(path, head):
        return "safetensors"
    # Pickle protocol 2+ starts with PROTO (0x80) and the protocol number.
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if _is_tar_head(head):
        return _sniff_tar(path)
    if _is_onnx(path, head):
        return "onnx"
    return _sniff_text(head)


def _sniff_zip(path: Path) -> str:
    directory = read_zip_directory(path)
    if directory is not None and directory.size > MAX_SNIFF_ZIP_DIRECTORY:
        return "zip"  # too many entries to list here; check_archive applies the member cap
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except ARCHIVE_READ_ERRORS:
        return "unknown"
    files = [n for n in names if not n.endswith("/")]
    if files and all(n.endswith(".npy") for n in files):
        return "npz"
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in files):
        scripted = any("/code/" in n or n.endswith("constants.pkl") for n in names)
        return "torchscript" if scripted else "pickle"
    return "zip"


def tar_names(path: Path) -> Iterator[tarfile.TarInfo]:
    """The first members of a tar, reading a bounded amount (see MAX_SNIFF_BYTES).

    Raises the archive's read errors (see ARCHIVE_READ_ERRORS) for a corrupt file.
    """
    budget = min(MAX_SNIFF_BYTES, SNIFF_MAX_RATIO * path.stat().st_size)
    with tarfile.open(path, "r:*") as tf:
        for _ in range(MAX_SNIFF_MEMBERS):
            member = tf.next()
            if member is None:
                return
            yield member
            # The next header lies after this member's data: stop rather than inflate it.
            if member.offset_data + member.size > budget:
                return


def _sniff_tar(path: Path) -> str:
    base: set[str] = set()
    try:
        for member in tar_names(path):
            if member.isfile():  # a folder named "train" is not a CIFAR batch
                base.add(member.name.rsplit("/", 1)[-1])
    except ARCHIVE_READ_ERRORS:
        return "unknown"
    if base >= _CIFAR10_MEMBERS or (base >= _CIFAR100_MEMBERS and "meta" in base):
        return "cifar"
    return "tar"


def _is_safetensors(path: Path, head: bytes) -> bool:
    # 8-byte little-endian header length, then that many bytes of a JSON object.
    if len(head) < 10 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    if n < 2 or n + 8 > path.stat().st_size or n > 100 * 1024 * 1024:
        return False
    with path.open("rb") as fh:
        fh.seek(8)
        raw = fh.read(n)
    try:
        return isinstance(json.loads(raw), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def _is_onnx(path: Path, head: bytes) -> bool:
    # ModelProto serialises ir_version (field 1, varint: tag 0x08) first, then a
    # length-delimited field among producer_name..graph (fields 2-8, wire type 2).
    if head[0] != 0x08:
        return False
    parsed = _read_varint(head, 1)
    if parsed is None or not 1 <= parsed[0] <= 100 or parsed[1] >= len(head):
        return False
    tag = head[parsed[1]]
    if tag & 0x07 != 2 or not 2 <= tag >> 3 <= 8:
        return False
    if path.stat().st_size > ONNX_PARSE_MAX_BYTES:
        return True
    try:
        import onnx  # a protobuf parser only; imported here to keep `sniff` cheap elsewhere

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # any parse failure means "not ONNX", whatever protobuf raises
        return False
    return bool(model.graph.node) or bool(model.graph.output)


def _sniff_text(head: bytes) -> str:
    text = head.decode("utf-8", errors="ignore") if _mostly_text(head) else ""
    lines = [ln for ln in text.splitlines()[:TEXT_SNIFF_LINES] if ln.strip()]
    if len(head) == TEXT_SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut mid-way
    if not lines:
        return "unknown"
    if all(ln.lstrip().startswith("{") and _is_json_object(ln) for ln in lines):
        return "jsonl"
    try:
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    except csv.Error:
        return "unknown"
    widths = {len(r) for r in rows}
    if len(widths) == 1 and widths.pop() >= 2:
        return "csv"
    return "unknown"


def _mostly_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Tolerate only a multi-byte character cut at the end of the sniffed window.
        return exc.start >= len(head) - 3
    return True


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".tar.gz" if name.endswith(".tar.gz") else path.suffix.lower()


def _has_member(path: Path, kind: str, basename: str) -> bool:
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        else:
            names = [m.name for m in tar_names(path)]
    except ARCHIVE_READ_ERRORS:
        return False
    return any(n.rstrip("/").rsplit("/", 1)[-1] == basename for n in names)


def infer_teacher_format(path: Path, declared: str | None) -> str:
    """The teacher format to use: the declared one checked against the bytes, or inferred."""
    path = Path(path)
    field, accepted = "teacher.format", ", ".join(TEACHER_FORMATS)
    if path.is_dir():
        kind = "directory"
    elif not path.is_file():
        raise TeacherLoadError(f"teacher file {path.name!r} does not exist", field="teacher.source")
    else:
        kind = sniff(path)
    if kind == "pickle":
        raise TeacherLoadError(
            f"{path.name!r} is a Python pickle (e.g. torch.save of a model), which could run "
            "code when loaded and is never accepted; export the teacher as ONNX "
            "(torch.onnx.export), TorchScript (torch.jit.save) or safetensors (+ teacher.arch)",
            field=field,
        )
    if kind in ("zip", "tar", "directory"):
        if kind == "directory":
            has_config = (path / "config.json").is_file()
        else:
            has_config = _has_member(path, kind, "config.json")
        if not has_config:
            raise TeacherLoadError(
                f"{path.name!r} is {DESCRIPTIONS[kind]} without a config.json; an 'hf' teacher "
                "is a transformers model folder (config.json + safetensors weights)",
                field=field,
            )
        kind = "hf"
    if kind not in TEACHER_FORMATS:
        guess = TEACHER_EXTENSIONS.get(_suffix(path))
        hint = f" (its extension suggests {guess!r})" if guess else ""
        raise TeacherLoadError(
            f"{path.name!r} is {DESCRIPTIONS[kind]}{hint}; accepted teacher formats: {accepted}",
            field=field,
        )
    if declared is not None and declared != kind:
        raise TeacherLoadError(
            f"teacher.format is {declared!r} but the file is {DESCRIPTIONS[kind]}; "
            f"set teacher.format to {kind!r} or upload the right file",
            field=field,
        )
    return kind


def _dataset_kind(path: Path) -> str:
    if path.is_dir():
        return "directory"
    if not path.is_file():
        raise DatasetError(f"dataset file {path.name!r} does not exist", field="dataset.source")
    if path.stat().st_size == 0:
        raise DatasetError(f"dataset file {path.name!r} is empty", field="dataset.source")
    return sniff(path)


# Which sniffed content each dataset format may have.
_DATASET_CONTENT: dict[str, set[str]] = {
    "npz": {"npz"},
    "imagefolder": {"zip", "tar", "directory"},
    "cifar": {"cifar"},
    "csv": {"csv"},
    "jsonl": {"jsonl"},
}


def infer_dataset_format(path: Path, declared: str | None) -> str:
    """The dataset format to use: the declared one checked against the bytes, or inferred."""
    path = Path(path)
    field, accepted = "dataset.format", ", ".join(DATASET_FORMATS)
    kind = _dataset_kind(path)
    matches = [f for f in DATASET_FORMATS if kind in _DATASET_CONTENT[f]]
    if declared is not None:
        if declared not in _DATASET_CONTENT:
            raise DatasetError(
                f"unknown dataset.format {declared!r}; accepted: {accepted}", field=field
            )
        if kind in _DATASET_CONTENT[declared]:
            return declared
        hint = f"; set dataset.format to {matches[0]!r}" if matches else ""
        raise DatasetError(
            f"dataset.format is {declared!r} but {path.name!r} is {DESCRIPTIONS[kind]}{hint}",
            field=field,
        )
    if len(matches) == 1:
        return matches[0]
    guess = DATASET_EXTENSIONS.get(_suffix(path))
    hint = f" (its extension suggests {guess!r})" if guess else ""
    what = "a Python pickle, which is never loaded" if kind == "pickle" else DESCRIPTIONS[kind]
    raise DatasetError(
        f"cannot tell the format of {path.name!r}: it is {what}{hint}; "
        f"set dataset.format to one of: {accepted}",
        field=field,
    )
