"""Build the FastAPI app (`uvicorn --factory app.main:create_app`); importing it touches nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from akd_core.spec import JobSpec
from app.api.problems import install_problem_handlers
from app.api.routes import artifacts, docs, events, jobs, meta, uploads
from app.core.config import Settings, get_settings
from app.db.migrate import upgrade

STATIC_DIR = Path(__file__).resolve().parent / "static"
DESCRIPTION = (
    "Distil a large classifier into a small ONNX student with Annealing Knowledge "
    "Distillation. Upload a teacher and a dataset (`POST /uploads`), submit a job spec "
    "(`POST /jobs`), follow its events, download the artifacts. Errors are RFC 9457 "
    "problem+json."
)


def _openapi(app: FastAPI) -> dict[str, Any]:
    # POST /jobs reads its body raw (for field-naming errors), so add the spec's schema here.
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        spec = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(spec.pop("$defs", {}))
        components["JobSpec"] = spec
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app for `settings` (default: from AKD_* environment variables)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        upgrade(settings)
        yield

    app = FastAPI(
        title="AKD: Annealing-KD compression service",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    for module in (meta, uploads, jobs, events, artifacts, docs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
