"""FastAPI dependencies shared by every router: settings, session, media, the caller.

The jurisdiction served is a layers dependency (``layers.deps.JurisdictionDep``): the kernel
knows no domain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.errors import Unauthorized
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """Yield a session; the route commits, anything unfinished is rolled back."""
    with db.sessions() as session:
        yield session


async def get_media(request: Request) -> LocalMediaStore:
    media: LocalMediaStore = request.app.state.media
    return media


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
MediaDep = Annotated[LocalMediaStore, Depends(get_media)]


_bearer = HTTPBearer(auto_error=False, description="A staff token from `geo311 token create`")


def get_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> auth_service.Principal:
    if credentials is None:
        raise Unauthorized("Send a staff token as 'Authorization: Bearer <token>'.")
    return auth_service.authenticate(session, credentials.credentials)


PrincipalDep = Annotated[auth_service.Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[auth_service.Principal], auth_service.Principal]:
    """Return a dependency that lets through only callers with one of ``roles`` (or admin)."""

    def _check(principal: PrincipalDep) -> auth_service.Principal:
        auth_service.require_role(principal, roles)
        return principal

    return _check
