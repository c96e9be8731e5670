"""FastAPI dependencies as ``Annotated`` types: ``SettingsDep``, ``SessionDep``, ``PrincipalDep``.

Routers declare what they need by type (``def get_job(session: SessionDep,
principal: PrincipalDep, job_id: str)``); auth is attached to every router at
mount time in ``llmforge.app`` so no route can forget it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from llmforge.errors import Forbidden
from llmforge.platform.auth import Principal, authenticate
from llmforge.platform.db import session_scope
from llmforge.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An llmforge API key: `Authorization: Bearer lf_...`")


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    # A short session of its own: the principal must be known (and last_used committed)
    # even for streaming routes that do not keep a session open.
    with session_scope(settings.database_url) as session:
        return authenticate(session, creds.credentials if creds else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_superuser(principal: PrincipalDep) -> Principal:
    if not principal.is_superuser:
        raise Forbidden("only a superuser key can manage projects and keys")
    return principal


SuperuserDep = Annotated[Principal, Depends(require_superuser)]
