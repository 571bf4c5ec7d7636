"""A spec's local files: `file:` sources checked and resolved before `akd submit` uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Spec sections whose `source` may name a local file to upload.
FILE_SECTIONS = ("teacher", "dataset")


def local_files(spec: dict[str, Any], base_dir: Path) -> dict[str, Path]:
    """Validate `spec` (SpecError naming the field) and map each `file:` section to its file.

    Relative paths are relative to `base_dir` (the spec file's folder), as in `akd distill`;
    a missing file is named by the absolute path tried.
    """
    from akd_core.cli import file_source_path
    from akd_core.errors import SpecError
    from akd_core.models.names import check_arch_name, check_arch_options
    from akd_core.spec import parse_spec

    parsed = parse_spec(spec)  # typos, enums, epochs: before a single byte is uploaded
    # The server's own architecture checks (torch-free), so a wrong arch uploads nothing.
    check_arch_name(parsed.student.arch, "student.arch")
    check_arch_options(parsed.student.arch, parsed.student.options, "student.options")
    found: dict[str, Path] = {}
    for section in FILE_SECTIONS:
        source = spec[section]["source"]
        if source.startswith("file:"):
            path = file_source_path(source, base_dir)
            if not path.is_file():
                raise SpecError(
                    f"file {path} does not exist or is not a file", field=f"{section}.source"
                )
            found[section] = path
    return found
