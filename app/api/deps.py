"""Route dependencies named as types: settings, a DB session and the calling owner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.api.problems import ApiProblem
from app.core.config import Settings
from app.core.security import verify_key
from app.db.models import LOCAL_OWNER
from app.db.session import SessionLocal


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (async: no I/O, so no thread-pool hop)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    """A session per request, closed afterwards (helpers commit their own changes)."""
    session = SessionLocal(settings)
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_db)]

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="akd"'}


def get_owner(request: Request, settings: SettingsDep, session: SessionDep) -> str:
    """The owner id of the caller: its API key's id, or 'local' when keys are off."""
    if not settings.require_keys:
        return LOCAL_OWNER
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "This server requires an API key: send 'Authorization: Bearer <key>' "
            "(create one with `akd keys create NAME`).",
            slug="unauthorized",
            headers=_UNAUTHORIZED,
        )
    key = verify_key(session, token.strip())
    if key is None:
        raise ApiProblem(
            401,
            "The API key is unknown or revoked; check the key or create a new one "
            "with `akd keys create NAME`.",
            slug="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="akd", error="invalid_token"'},
        )
    return key.id


OwnerDep = Annotated[str, Depends(get_owner)]
