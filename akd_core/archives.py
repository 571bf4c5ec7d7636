"""Safe archives: check zip/tar members before anything is extracted (no torch here)."""

from __future__ import annotations

import functools
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from akd_core.errors import DatasetError
from akd_core.limits import Limits
from akd_core.zipdir import read_zip_directory

_CHUNK = 1024 * 1024


class UnsafeArchiveError(DatasetError):
    """An archive member could escape the destination, is a link/device, or breaks a cap."""

    title = "Unsafe archive"


# The archive caps are fields of the one Limits dataclass; this name is kept for callers.
ArchiveLimits = Limits


@dataclass(frozen=True)
class MemberInfo:
    """One checked archive member: its normalised relative name and uncompressed size."""

    name: str
    size: int
    is_dir: bool
    compressed_size: int | None = None


def _unsafe(member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"archive member {member!r} {reason}", field="dataset.source")


def _clean_name(raw: str) -> str:
    """The member's relative POSIX path, or UnsafeArchiveError if it could escape dest."""
    name = raw.replace("\\", "/")  # a backslash is a separator on Windows-made archives
    if "\x00" in name:
        raise _unsafe(raw, "has a NUL byte in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _unsafe(raw, "has an absolute path; only relative paths are accepted")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(raw, "has a '..' path component that would escape the destination")
    if not parts:
        raise _unsafe(raw, "has an empty name")
    return "/".join(parts)


class _Budget:
    """Running totals shared by the check and the extraction (which re-counts real bytes)."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.archive_bytes = max(path.stat().st_size, 1)
        self.members = 0
        self.total = 0

    def add_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise _unsafe(name, f"is past the cap of {self.limits.max_members} members")

    def add_bytes(self, name: str, n: int) -> None:
        self.total += n
        lim = self.limits
        if self.total > lim.max_total_bytes:
            raise _unsafe(
                name, f"takes the uncompressed total past the cap of {lim.max_total_bytes} bytes"
            )
        ratio = self.total / self.archive_bytes
        if self.total > lim.ratio_min_bytes and ratio > lim.max_ratio:
            raise _unsafe(
                name,
                f"takes the compression ratio to {ratio:.0f}, past the cap of {lim.max_ratio:g} "
                "(a likely archive bomb)",
            )


def _kind(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError):
        pass
    raise DatasetError(
        f"{path.name!r} is not a readable zip or tar archive (truncated or another format)",
        field="dataset.source",
    )


# Central directory bytes allowed per member: an entry is 46 bytes + name + extra fields
# (~100-300 bytes in real zips); a larger directory is mostly entries past the member cap.
DIRECTORY_BYTES_PER_MEMBER = 512


def _check_zip_directory(path: Path, limits: ArchiveLimits) -> None:
    """Refuse, from the end record alone, a zip whose directory zipfile would parse at length."""
    found = read_zip_directory(path)
    if found is None:
        return  # no end record: zipfile reports the zip as unreadable
    if found.entries > limits.max_members:
        raise UnsafeArchiveError(
            f"archive {path.name!r} declares {found.entries} members, past the cap of "
            f"{limits.max_members} members",
            field="dataset.source",
        )
    if found.size > limits.max_members * DIRECTORY_BYTES_PER_MEMBER:
        raise UnsafeArchiveError(
            f"archive {path.name!r} has a central directory of {found.size} bytes, more than "
            f"{limits.max_members} members need",
            field="dataset.source",
        )


_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _zip_member(info: zipfile.ZipInfo, limits: ArchiveLimits) -> MemberInfo:
    name = _clean_name(info.filename)
    # Unix-made zips keep st_mode in the high 16 bits; a file type of 0 means "not recorded".
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _unsafe(info.filename, "is a symlink or special file; only files and folders")
    if info.flag_bits & 0x1:
        raise _unsafe(info.filename, "is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise _unsafe(
            info.filename,
            f"uses compression method {info.compress_type}; accepted: stored, deflate, bzip2, lzma",
        )
    size = info.file_size
    ratio = size / max(info.compress_size, 1)
    if size > limits.ratio_min_bytes and ratio > limits.max_ratio:
        raise _unsafe(
            info.filename,
            f"has a compression ratio of {ratio:.0f}, past the cap of {limits.max_ratio:g} "
            "(a likely zip bomb)",
        )
    return MemberInfo(name, size, info.is_dir(), info.compress_size)


def _tar_member(info: tarfile.TarInfo) -> MemberInfo:
    name = _clean_name(info.name)
    if not (info.isreg() or info.isdir()):
        what = "a link" if info.issym() or info.islnk() else "a device, fifo or special file"
        raise _unsafe(info.name, f"is {what}; only regular files and folders are accepted")
    return MemberInfo(name, info.size, info.isdir(), None)


# What a truncated or corrupt archive makes zipfile/tarfile and their codecs raise; a zip
# whose UTF-8 flag is set on a name that is not UTF-8 raises UnicodeDecodeError.
ARCHIVE_READ_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    UnicodeDecodeError,
    NotImplementedError,  # a zip compression method the zipfile module lacks
)


def _corrupt(path: Path, exc: BaseException) -> DatasetError:
    return DatasetError(
        f"archive {path.name!r} is truncated or corrupt ({exc}); upload it again",
        field="dataset.source",
    )


Opener = Callable[[], IO[bytes]]


def _walk(path: Path, budget: _Budget) -> Iterator[tuple[MemberInfo, Opener]]:
    """Yield members in archive order, each checked before the next header is read."""
    seen: set[str] = set()

    def admit(member: MemberInfo, raw_name: str) -> MemberInfo:
        budget.add_member(raw_name)
        if not member.is_dir:
            if member.name in seen:
                raise _unsafe(raw_name, "appears twice; member names must be unique")
            seen.add(member.name)
            budget.add_bytes(raw_name, member.size)
        return member

    if _kind(path) == "zip":
        _check_zip_directory(path, budget.limits)
        with zipfile.ZipFile(path) as zf:
            for zinfo in zf.infolist():
                member = admit(_zip_member(zinfo, budget.limits), zinfo.filename)
                yield member, functools.partial(zf.open, zinfo)
        return
    # Random-access mode: tarfile checks each header (and that the previous member's data
    # is all there) only when asked for the next one, so caps stop a bomb before it inflates.
    with tarfile.open(path, "r:*") as tf:
        while (tinfo := tf.next()) is not None:
            member = admit(_tar_member(tinfo), tinfo.name)
            yield member, functools.partial(_tar_data, tf, tinfo)


def _tar_data(tf: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    fh = tf.extractfile(info)
    if fh is None:  # only regular files reach here; this guards the type checker's view
        raise _unsafe(info.name, "has no data")
    return fh


def check_archive(path: Path, limits: ArchiveLimits | None = None) -> list[MemberInfo]:
    """Check every member of a zip or tar (plain, gz, bz2, xz) without extracting anything."""
    path = Path(path)
    budget = _Budget(path, limits or ArchiveLimits())
    try:
        return [member for member, _ in _walk(path, budget)]
    except ARCHIVE_READ_ERRORS as exc:
        raise _corrupt(path, exc) from exc


def _copy(src: IO[bytes], target: Path, member: MemberInfo, budget: _Budget) -> None:
    # O_EXCL | O_NOFOLLOW: never write through a link or over a file already written.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with os.fdopen(os.open(target, flags, 0o644), "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > member.size:
                raise _unsafe(member.name, "holds more data than its header declares")
            budget.add_bytes(member.name, len(chunk))
            out.write(chunk)
    if written != member.size:
        raise _unsafe(member.name, f"holds {written} bytes but its header declares {member.size}")


def safe_extract(path: Path, dest: Path, limits: ArchiveLimits | None = None) -> Path:
    """Check, then extract into a temp folder next to dest and rename it to dest (atomic)."""
    path, dest = Path(path), Path(dest)
    limits = limits or ArchiveLimits()
    check_archive(path, limits)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DatasetError(f"cannot extract to {dest}: it exists and is not an empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    budget = _Budget(path, limits)  # counts the bytes really written, not the headers
    try:
        for member, open_data in _walk(path, _Budget(path, limits)):
            target = tmp.joinpath(*member.name.split("/"))
            try:
                if member.is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with open_data() as src:
                    _copy(src, target, member, budget)
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                raise _unsafe(member.name, f"clashes with another member ({exc.strerror})") from exc
        os.replace(tmp, dest)  # also replaces an empty dest folder (POSIX rename)
    except ARCHIVE_READ_ERRORS as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _corrupt(path, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def read_members(
    path: Path, wanted: Callable[[str], bool], limits: ArchiveLimits | None = None
) -> dict[str, bytes]:
    """Read the checked members whose name passes `wanted` into memory, without extracting."""
    path = Path(path)
    limits = limits or ArchiveLimits()
    check_archive(path, limits)
    found: dict[str, bytes] = {}
    try:
        for member, open_data in _walk(path, _Budget(path, limits)):
            if member.is_dir or not wanted(member.name):
                continue
            with open_data() as src:
                data = src.read(member.size + 1)
            if len(data) != member.size:
                raise _unsafe(member.name, "holds a different amount of data than declared")
            found[member.name] = data
    except ARCHIVE_READ_ERRORS as exc:
        raise _corrupt(path, exc) from exc
    return found
