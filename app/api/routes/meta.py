"""Service metadata: health check and the published JSON Schemas of the job spec and report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import akd_core
from akd_core.report_schema import report_json_schema
from akd_core.spec import json_schema
from app.api.deps import OwnerDep, SessionDep
from app.schemas import Health

router = APIRouter(tags=["meta"])


@router.get("/healthz", response_model=Health, summary="Liveness and database check")
def healthz(session: SessionDep) -> Health:
    """'ok' when the API answers and its database is reachable."""
    try:
        session.execute(text("SELECT 1"))
        db = "ok"
    except SQLAlchemyError:
        db = "unreachable"
    return Health(
        status="ok" if db == "ok" else "degraded", database=db, version=akd_core.__version__
    )


@router.get("/schema/job-spec", summary="The JSON Schema of the job spec")
def job_spec_schema(owner: OwnerDep) -> dict[str, Any]:
    """The schema every POST /jobs body is validated against."""
    return json_schema()


@router.get("/schema/report", summary="The JSON Schema of report.json")
def report_schema(owner: OwnerDep) -> dict[str, Any]:
    """The schema every job's report.json follows (the same as docs/report.schema.json)."""
    return report_json_schema()
