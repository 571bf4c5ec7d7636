"""A spec's local files: `file:` sources checked and resolved before `akd submit` uploads."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

# A fixed timestamp: the same folder zips to the same bytes, so the server's per-owner
# deduplication by sha256 finds the earlier upload.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def local_files(spec: dict[str, Any], base_dir: Path) -> dict[tuple[str, str], Path]:
    """Validate `spec` (SpecError naming the field) and map each `file:` field to its path.

    Relative paths are relative to `base_dir` (the spec file's folder), as in `akd distill`;
    a missing file is named by the absolute path tried. A path may be a folder (a
    transformers model, an image folder): `zip_folder` packs it for the upload.
    """
    from akd_core.cli import check_file_sources_exist, file_sources, with_absolute_file_sources
    from akd_core.models.names import check_arch_name, check_arch_options
    from akd_core.spec import parse_spec

    parsed = parse_spec(spec)  # typos, enums, epochs: before a single byte is uploaded
    # The server's own architecture checks (torch-free), so a wrong arch uploads nothing.
    check_arch_name(parsed.student.arch, "student.arch")
    check_arch_options(parsed.student.arch, parsed.student.options, "student.options")
    # The same resolution and existence check as `akd distill`: one rule, one message.
    resolved = with_absolute_file_sources(parsed, base_dir)
    check_file_sources_exist(resolved)
    return {
        (section, field): Path(value.removeprefix("file:"))
        for section in ("teacher", "dataset")
        for field, value in file_sources(resolved, section).items()
    }


def zip_folder(folder: Path, dest: Path) -> Path:
    """`folder`'s files, at the zip's top level, in an uncompressed zip at `dest`."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with path.open("rb") as src, zf.open(info, "w") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
    return dest
