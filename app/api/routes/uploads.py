"""POST /uploads: stream a file to disk under a size cap, hash it, sniff it, check archives."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from akd_service.config import Settings
from akd_service.db.jobs import new_id
from akd_service.db.models import Upload
from akd_service.db.session import session_scope
from akd_service.db.uploads import owned_upload_with_sha256
from app.api.checks import inspect_upload
from app.api.deps import OwnerDep, SettingsDep, UploadSlot
from app.api.problems import ApiProblem
from app.schemas import UploadPublic
from app.uploads import UploadRejected, UploadTimeouts, receive_upload

router = APIRouter(prefix="/uploads", tags=["uploads"])

# The body is parsed by our streaming reader, not FastAPI, so describe it for /docs by hand.
_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def _existing_upload(settings: Settings, owner: str, sha256: str) -> UploadPublic | None:
    """The caller's stored upload of these bytes, as the public view marked reused."""
    with session_scope(settings) as session:
        row = owned_upload_with_sha256(session, owner, sha256, settings.uploads)
        if row is None:
            return None
        return UploadPublic(
            id=row.id,
            sha256=row.sha256,
            size=row.size,
            kind=row.kind,
            filename=row.filename,
            reused=True,
        )


@router.post(
    "",
    status_code=201,
    response_model=UploadPublic,
    summary="Upload a teacher or dataset file",
    openapi_extra=_MULTIPART_BODY,
    responses={
        408: {"description": "The client stalled or took too long"},
        413: {"description": "Over the size cap"},
        415: {"description": "Not multipart/form-data"},
        422: {"description": "Unsafe archive"},
        429: {"description": "Too many uploads in flight for this key"},
    },
)
async def create_upload(
    request: Request, settings: SettingsDep, owner: OwnerDep, _slot: UploadSlot
) -> UploadPublic:
    """Store one file; reference it in a job spec as `upload:<id>`.

    Identical bytes you uploaded before are not stored twice: the answer is that upload
    (same id, `reused: true`).
    """
    upload_id = new_id()
    dest = settings.uploads / upload_id
    timeouts = UploadTimeouts(settings.upload_idle_timeout_s, settings.upload_total_timeout_s)
    try:
        received = await receive_upload(request, dest, settings.max_upload_bytes, timeouts)
    except UploadRejected as exc:
        raise ApiProblem(exc.status, exc.message, field=exc.field, slug="upload") from exc
    existing = await run_in_threadpool(_existing_upload, settings, owner, received.sha256)
    if existing is not None:
        # The same bytes again (a re-run `akd submit`): keep one stored copy per owner.
        shutil.rmtree(dest, ignore_errors=True)
        return existing
    try:
        # Sniffing and archive walks read the whole file: keep them off the event loop.
        kind = await run_in_threadpool(inspect_upload, received.path, settings)

        def _record() -> None:
            with session_scope(settings) as session:
                session.add(
                    Upload(
                        id=upload_id,
                        owner=owner,
                        filename=received.filename,
                        size=received.size,
                        sha256=received.sha256,
                        path=received.path.relative_to(settings.uploads).as_posix(),
                        kind=kind,
                    )
                )

        await run_in_threadpool(_record)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return UploadPublic(
        id=upload_id,
        sha256=received.sha256,
        size=received.size,
        kind=kind,
        filename=received.filename,
    )
