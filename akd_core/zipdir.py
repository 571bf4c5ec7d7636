"""A zip's central directory, sized from its end record before zipfile parses it (no torch).

zipfile.ZipFile reads the whole central directory into memory and builds one ZipInfo per
entry (~0.5 KB each), so a 2 GB upload of empty entries would cost gigabytes before any cap
on members applied. The end record states the directory's size and entry count up front.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_EOCD = b"PK\x05\x06"
_EOCD_LEN = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_MAX_COMMENT = 65535


@dataclass(frozen=True)
class ZipDirectory:
    """What a zip's end record declares: its entry count and central directory size."""

    entries: int
    size: int


def read_zip_directory(path: Path) -> ZipDirectory | None:
    """The declared entry count and directory size, or None when there is no end record."""
    with Path(path).open("rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        start = max(0, end - _EOCD_LEN - _MAX_COMMENT)
        fh.seek(start)
        tail = fh.read()
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < _EOCD_LEN:
            return None
        entries, size = struct.unpack("<xxxxxxxxxxHI", tail[at : at + 16])
        if (entries == 0xFFFF or size == 0xFFFFFFFF) and at >= 20:
            locator = tail[at - 20 : at]
            if locator[:4] == _ZIP64_LOCATOR:
                (offset,) = struct.unpack("<Q", locator[8:16])
                fh.seek(offset)
                record = fh.read(48)
                if len(record) == 48 and record[:4] == _ZIP64_EOCD:
                    entries, size = struct.unpack("<QQ", record[32:48])
    return ZipDirectory(entries, size)
