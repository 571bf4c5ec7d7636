"""GET /jobs/{id}/artifacts/{name}: download one of the files a job produced."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.deps import OwnedJob, SettingsDep
from app.api.problems import ApiProblem

router = APIRouter(prefix="/jobs", tags=["jobs"])

MEDIA_TYPES = {
    ".onnx": "application/octet-stream",
    ".safetensors": "application/octet-stream",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".png": "image/png",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def _recorded_file(job_dir: Path, name: str) -> Path | None:
    """The file `name` directly inside job_dir, or None if it is not there (or not a file)."""
    try:
        root = job_dir.resolve()
        path = (root / name).resolve()
        return path if path.parent == root and path.is_file() else None
    except (OSError, ValueError):
        return None


@router.get(
    "/{job_id}/artifacts/{name}",
    summary="Download an artifact",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_artifact(job: OwnedJob, name: str, settings: SettingsDep) -> FileResponse:
    """One artifact by name (the names are listed in the job's `artifacts`)."""
    # Only names the worker recorded are served, so no request can reach any other path;
    # the name is checked before it touches the file system (a NUL would raise there).
    names = list(job.artifacts or [])
    path = _recorded_file(settings.artifacts / job.id, name) if name in names else None
    if path is None:
        listing = ", ".join(names) if names else "none yet"
        raise ApiProblem(
            404,
            f"job {job.id} has no artifact {name[:100]!r}; available: {listing}",
            field="name",
            slug="artifact-not-found",
        )
    media = MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media, filename=name)
