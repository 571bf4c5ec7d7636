"""Build the FastAPI app (`uvicorn --factory app.main:create_app`); importing it touches nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import akd_core
from akd_service.config import Settings
from akd_service.db.migrate import upgrade
from akd_service.queue import CeleryQueue, Queue
from app.api.deps import slot_limiters
from app.api.guards import KeysOffGuard
from app.api.openapi import build_openapi
from app.api.problems import install_problem_handlers
from app.api.routes import artifacts, docs, events, jobs, meta, uploads

STATIC_DIR = Path(__file__).resolve().parent / "static"
DESCRIPTION = (
    "Distil a large classifier into a small ONNX student with Annealing Knowledge "
    "Distillation. Upload a teacher and a dataset (`POST /uploads`), submit a job spec "
    "(`POST /jobs`), follow its events, download the artifacts. Errors are RFC 9457 "
    "problem+json."
)


def create_app(settings: Settings | None = None, queue: Queue | None = None) -> FastAPI:
    """The API app built from `settings` that wakes workers through `queue`.

    Called with no arguments (`uvicorn --factory app.main:create_app`), the settings come
    from the AKD_* environment and the queue is the Celery producer on their broker.
    """
    settings = settings if settings is not None else Settings()
    queue = queue if queue is not None else CeleryQueue.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        upgrade(settings)
        yield

    app = FastAPI(
        title="AKD: Annealing-KD compression service",
        version=akd_core.__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.queue = queue
    app.state.stream_slots, app.state.upload_slots = slot_limiters(settings)
    if not settings.require_keys:
        # Checked per request: the app cannot see where uvicorn was told to bind.
        app.add_middleware(KeysOffGuard)
    install_problem_handlers(app)
    for module in (meta, uploads, jobs, events, artifacts, docs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings.require_keys)
        return app.openapi_schema

    # FastAPI's documented way to customise the document is to replace this method.
    app.openapi = openapi  # type: ignore[method-assign]
    return app
