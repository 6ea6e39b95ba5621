"""The session cookie and CSRF at the HTTP edge: who a cookie signs in, and whether a write
that relies on it came from our own pages.

A browser sends cookies with requests other sites make it send, so every state-changing
request that authenticates by the session cookie must (1) come from our own origin (the
``Origin`` header, else ``Referer``) and (2) carry the session's CSRF token, as the
``X-CSRF-Token`` header or a ``csrf_token`` form field, compared in constant time. Requests
with a bearer token need neither: no other site can make a browser send one.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from geo311.kernel.auth import sessions
from geo311.kernel.auth.errors import CsrfFailed
from geo311.kernel.auth.service import Principal
from geo311.kernel.errors import Unauthorized
from geo311.kernel.settings import Settings

SESSION_COOKIE = "geo311_session"
LOGIN_CSRF_COOKIE = "geo311_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin(url: str) -> str | None:
    """Return ``scheme://host[:port]`` of ``url`` (default port dropped, lower case), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def own_origins(request: Request, settings: Settings) -> set[str]:
    """Return the origins our pages are served from: the public base URL's, and the one
    this request was addressed to (a browser cannot send another site's cookies to it)."""
    out = {o for o in (_origin(settings.base_url),) if o}
    host = request.headers.get("host")
    if host:
        here = _origin(f"{request.url.scheme}://{host}")
        if here:
            out.add(here)
    return out


def check_same_origin(request: Request, settings: Settings) -> None:
    """Raise CsrfFailed unless the request says it comes from one of our own pages."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Pages send Referrer-Policy: same-origin, so their own writes carry both.
        referer = request.headers.get("referer")
        if referer is None:
            raise CsrfFailed(
                "This request relies on the session cookie but says neither which site sent it "
                "(Origin) nor which page (Referer), so it is refused. Pages of this service "
                "send both; scripts and other programs should use a bearer token instead."
            )
        source = _origin(referer)
    else:
        source = _origin(origin)
    if source is None or source not in own_origins(request, settings):
        raise CsrfFailed(
            "This request came from another site, so the session cookie it carries does not "
            "count; nothing was changed."
        )


def check_token(expected: str, given: str | None) -> None:
    """Raise CsrfFailed unless ``given`` is the ``expected`` CSRF token (constant time)."""
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfFailed(
            f"The CSRF token is missing or wrong: send the session's token as the {CSRF_HEADER} "
            f"header or the {CSRF_FIELD} form field (GET /api/v1/session gives it). Nothing was "
            "changed."
        )


async def form_csrf_token(request: Request) -> str | None:
    """Return the ``csrf_token`` field of a form write that relies on the session cookie
    (None otherwise). Async, so that the form is read, and kept for the route, off the
    worker threads."""
    if request.method in SAFE_METHODS or CSRF_HEADER.lower() in request.headers:
        return None
    if SESSION_COOKIE not in request.cookies or "authorization" in request.headers:
        return None
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in _FORMS:
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def lifetimes(settings: Settings) -> sessions.Lifetimes:
    return sessions.Lifetimes.from_settings(settings.signin)


def signed_in(request: Request, session: Session, settings: Settings) -> sessions.SignedIn | None:
    """Return the live session of the request's cookie, or None (no cookie, or it ended)."""
    cached = getattr(request.state, "signed_in", None)
    if isinstance(cached, sessions.SignedIn):
        return cached
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    found = sessions.resolve(
        session, session_id=session_id, lifetimes=lifetimes(settings), now=datetime.now(UTC)
    )
    request.state.signed_in = found
    return found


def session_principal(
    request: Request,
    session: Session,
    *,
    settings: Settings,
    form_token: str | None,
    touch: Callable[[str], None],
) -> Principal:
    """Return the principal of the request's session cookie, after the CSRF checks for a
    write; raise Unauthorized when the session has ended. ``touch(session_id)`` records the
    use (in a transaction of its own: a read-only request commits nothing)."""
    found = signed_in(request, session, settings)
    if found is None:
        raise Unauthorized(
            "Your sign-in has ended (signed out, expired, or unused for too long): sign in "
            "again at /login, or send a staff token as 'Authorization: Bearer <token>'."
        )
    if request.method not in SAFE_METHODS:
        check_same_origin(request, settings)
        check_token(found.csrf_token, request.headers.get(CSRF_HEADER) or form_token)
    if found.needs_touch:
        touch(request.cookies[SESSION_COOKIE])
    return found.principal


def set_session_cookie(response: Response, session_id: str, settings: Settings) -> None:
    """Give the browser its session cookie: script cannot read it, other sites' forms do not
    send it, and it is dropped at the session's absolute expiry."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=settings.signin.session_max_age_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.session_cookie_secure,
    )
