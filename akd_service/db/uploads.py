"""Upload rows: the one lookup of a caller's stored file, shared by the API checks and the worker."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from akd_service.db.models import Upload


def owned_upload_path(
    session: Session, upload_id: str, owner: str, uploads_root: Path
) -> Path | None:
    """Where `owner`'s upload `upload_id` is stored; None when there is no such upload of theirs.

    Another owner's upload answers exactly like a missing one, so ids are never disclosed.
    The file itself may be gone: callers check `is_file()` and word their own error.
    """
    upload = session.get(Upload, upload_id)
    if upload is None or upload.owner != owner:
        return None
    return upload.file_path(uploads_root)


def owned_upload_with_sha256(
    session: Session, owner: str, sha256: str, uploads_root: Path
) -> Upload | None:
    """`owner`'s oldest upload of exactly these bytes whose file is still stored, else None."""
    rows = session.scalars(
        select(Upload)
        .where(Upload.owner == owner, Upload.sha256 == sha256)
        .order_by(Upload.created_at, Upload.id)
    )
    return next((row for row in rows if row.file_path(uploads_root).is_file()), None)
