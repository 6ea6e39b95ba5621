"""FastAPI dependencies shared by every router: settings, session, media, the caller.

The jurisdiction served is a layers dependency (``layers.deps.JurisdictionDep``): the kernel
knows no domain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from geo311.kernel.auth import service as auth_service
from geo311.kernel.auth import sessions as auth_sessions
from geo311.kernel.auth import web as auth_web
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


_session_cookie = APIKeyCookie(
    name=auth_web.SESSION_COOKIE,
    auto_error=False,
    description="A page's sign-in (POST /login); writes also need the X-CSRF-Token header",
)


def get_optional_principal(
    request: Request,
    session: SessionDep,
    db: DatabaseDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_session_cookie)],
    form_token: Annotated[str | None, Depends(auth_web.form_csrf_token)],
) -> auth_service.Principal | None:
    """Return the caller: a bearer token's user, else the signed-in session's (whose writes
    must pass the CSRF checks), else None (no credentials at all); the routes' role checks
    are the same for both."""
    if credentials is not None:
        return auth_service.authenticate(session, credentials.credentials)
    if cookie:

        def touch(session_id: str) -> None:
            with db.session() as own:
                auth_sessions.touch(own, session_id=session_id, now=datetime.now(UTC))

        return auth_web.session_principal(
            request, session, settings=settings, form_token=form_token, touch=touch
        )
    return None


OptionalPrincipalDep = Annotated[auth_service.Principal | None, Depends(get_optional_principal)]


def get_principal(principal: OptionalPrincipalDep) -> auth_service.Principal:
    """Return the caller, or raise Unauthorized when there are no credentials."""
    if principal is None:
        raise Unauthorized(
            "Send a staff token as 'Authorization: Bearer <token>', or sign in at /login."
        )
    return principal


PrincipalDep = Annotated[auth_service.Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[auth_service.Principal], auth_service.Principal]:
    """Return a dependency that lets through only callers with one of ``roles`` (or admin)."""

    def _check(principal: PrincipalDep) -> auth_service.Principal:
        auth_service.require_role(principal, roles)
        return principal

    return _check


def get_page_user(
    request: Request, session: SessionDep, settings: SettingsDep
) -> auth_sessions.SignedIn | None:
    """Return a page's signed-in session (user, role, crew, CSRF token), or None.

    A staff page answers None with ``geo311.api.signin.login_redirect``; a public page shows a
    sign-in link. Pages put the CSRF token where their forms and scripts find it; the
    site-wide ``Referrer-Policy: same-origin`` makes their writes carry an Origin.
    """
    return auth_web.signed_in(request, session, settings)


PageUserDep = Annotated[auth_sessions.SignedIn | None, Depends(get_page_user)]
