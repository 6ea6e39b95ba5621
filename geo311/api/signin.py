"""Staff sign-in for pages: ``/login``, ``/logout`` and ``GET /api/v1/session``.

The sign-in form needs no script. It is protected against login CSRF (another site signing a
browser in as the attacker) by a token in a cookie of its own that the form sends back, and
by the same-origin check every cookie-authenticated write gets. Wording in English and
Spanish; ``?lang=`` picks one, else the browser's Accept-Language.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from babel import negotiate_locale
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from dispatch import service as dispatch_service
from geo311.kernel.auth import sessions, throttle
from geo311.kernel.auth import web as auth_web
from geo311.kernel.auth.errors import CsrfFailed
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import PrincipalDep, SessionDep, SettingsDep
from geo311.kernel.http import app_error_response
from geo311.kernel.settings import Settings
from layers import service as layers_service
from maps import shell

router = APIRouter()

LANGUAGES = ("en", "es")
_LOGIN_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Staff sign-in",
        "name": "Name",
        "password": "Password",
        "submit": "Sign in",
        "failed": (
            "Sign-in failed: that name and password do not match an active staff account. "
            "Check both and try again."
        ),
        "missing": "Enter your name and your password.",
        "throttled": "Too many failed sign-ins. Wait {s} seconds, then try again.",
        "stale": "This sign-in form was out of date. Please sign in again.",
        "signed_out": "You are signed out.",
        "signed_in": "You are signed in",
        "signed_in_as": "Signed in as {name} ({role}).",
        "crew": "Crew: {crew}.",
        "sign_out": "Sign out",
        "someone_else": "Sign in as someone else",
        "residents": "Residents need no account: report a problem at",
        "language": "Language",
        "crew_role": "crew",
        "dispatcher_role": "dispatcher",
        "planner_role": "planner",
        "admin_role": "admin",
    },
    "es": {
        "title": "Acceso del personal",
        "name": "Nombre",
        "password": "Contraseña",
        "submit": "Entrar",
        "failed": (
            "No se pudo entrar: ese nombre y esa contraseña no corresponden a una cuenta "
            "activa del personal. Revise ambos e inténtelo de nuevo."
        ),
        "missing": "Escriba su nombre y su contraseña.",
        "throttled": ("Demasiados intentos fallidos. Espere {s} segundos y vuelva a intentarlo."),
        "stale": "Este formulario de acceso estaba caducado. Vuelva a entrar, por favor.",
        "signed_out": "Ha cerrado la sesión.",
        "signed_in": "Ha iniciado sesión",
        "signed_in_as": "Sesión iniciada como {name} ({role}).",
        "crew": "Cuadrilla: {crew}.",
        "sign_out": "Cerrar sesión",
        "someone_else": "Entrar con otra cuenta",
        "residents": "Los vecinos no necesitan cuenta: informe de un problema en",
        "language": "Idioma",
        "crew_role": "cuadrilla",
        "dispatcher_role": "despacho",
        "planner_role": "planificación",
        "admin_role": "administración",
    },
}


def pick_language(request: Request, asked: str | None) -> str:
    """Return the page's language: ``asked`` when we have it, else the browser's best."""
    if asked in LANGUAGES:
        return asked
    preferred: list[tuple[float, str]] = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            preferred.append((quality, tag.replace("_", "-")))
    ordered = [tag for _, tag in sorted(preferred, key=lambda p: -p[0])]
    return negotiate_locale(ordered, list(LANGUAGES), sep="-") or "en"


def safe_next(value: str | None) -> str | None:
    """Return ``value`` if it is a path on this site to go to after sign-in, else None
    (anything that a browser could read as another site: ``//host``, ``/\\host``, a scheme,
    control characters)."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return None
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x21 or c == "\x7f" for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


@dataclass(frozen=True)
class _View:
    """What one rendering of the sign-in page says."""

    lang: str
    city: str
    login_token: str = ""
    next_path: str | None = None
    name: str = ""
    error: str | None = None
    notice: str | None = None
    signed_in: sessions.SignedIn | None = None
    crew: str | None = None


def _render(view: _View) -> str:
    """Return the sign-in page in the pages' shell (its header signs a signed-in user out)."""
    t = TEXT[view.lang]
    who = None
    if view.signed_in is not None:
        p = view.signed_in.principal
        who = t["signed_in_as"].format(name=p.name, role=t.get(f"{p.role}_role", p.role))
        if view.crew:
            who += " " + t["crew"].format(crew=view.crew)
    context = shell.PageContext(
        language=view.lang,
        city=view.city,
        user_name=view.signed_in.principal.name if view.signed_in else None,
        path="/login",
        csrf_token=view.signed_in.csrf_token if view.signed_in else None,
        user_role=view.signed_in.principal.role if view.signed_in else None,
        # The language switch keeps where to go after signing in.
        language_query=(("next", view.next_path),) if view.next_path else (),
    )
    return shell.render(
        "login.html",
        context,
        title=t["title"],
        s=t,
        signed_in=view.signed_in is not None,
        who=who,
        error=view.error,
        notice=view.notice,
        csrf_field=auth_web.CSRF_FIELD,
        login_token=view.login_token,
        next_path=view.next_path or "",
        name=view.name,
    )


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _city(session: SessionDep, settings: Settings) -> str:
    jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
    return jurisdiction.name if jurisdiction is not None else "geo311"


def _crew_code(session: SessionDep, settings: Settings, principal: Principal) -> str | None:
    if principal.crew_id is None:
        return None
    jurisdiction = layers_service.get_jurisdiction(session, settings.jurisdiction)
    if jurisdiction is None:
        return None
    return dispatch_service.crew_code_of(
        session, jurisdiction_id=jurisdiction.id, crew_id=principal.crew_id
    )


def _login_token(request: Request) -> str:
    """Return the login form's token: the browser's own if it has a well-formed one (so two
    open sign-in tabs both work), else a fresh one."""
    current = request.cookies.get(auth_web.LOGIN_CSRF_COOKIE, "")
    return current if _LOGIN_TOKEN.match(current) else secrets.token_urlsafe(32)


def _with_login_cookie(response: Response, token: str, settings: Settings) -> Response:
    # Strict: only a page of ours ever posts the sign-in form with it.
    response.set_cookie(
        auth_web.LOGIN_CSRF_COOKIE,
        token,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=settings.session_cookie_secure,
    )
    return response


def _passwords(request: Request, settings: Settings) -> Passwords:
    # One hasher per app: its dummy hash (for unknown names) is made once.
    cached = getattr(request.app.state, "passwords", None)
    if isinstance(cached, Passwords):
        return cached
    made = Passwords(settings.signin)
    request.app.state.passwords = made
    return made


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    next: str | None = None,
    lang: str | None = None,
    signed_out: bool = False,
) -> Response:
    language = pick_language(request, lang)
    found = auth_web.signed_in(request, session, settings)
    token = _login_token(request)
    view = _View(
        lang=language,
        city=_city(session, settings),
        login_token=token,
        next_path=safe_next(next),
        notice=TEXT[language]["signed_out"] if signed_out and found is None else None,
        signed_in=found,
        crew=_crew_code(session, settings, found.principal) if found else None,
    )
    return _with_login_cookie(_page(_render(view)), token, settings)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
    lang: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Sign in with a name and password; on success go to ``next`` (a path on this site)."""
    try:
        auth_web.check_same_origin(request, settings)
    except CsrfFailed as exc:
        return app_error_response(exc)
    language = pick_language(request, lang)
    t = TEXT[language]
    next_path = safe_next(next)
    city = _city(session, settings)
    expected = request.cookies.get(auth_web.LOGIN_CSRF_COOKIE, "")
    fresh = _login_token(request)

    def again(error: str, status: int) -> Response:
        view = _View(language, city, fresh, next_path, name=name[:200], error=error)
        return _with_login_cookie(_page(_render(view), status), fresh, settings)

    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        return again(t["stale"], 403)
    if not name.strip() or not password:
        return again(t["missing"], 422)
    attempt = sessions.sign_in(
        session,
        name=name,
        password=password,
        address=request.client.host if request.client is not None else None,
        passwords=_passwords(request, settings),
        policy=throttle.Policy.from_settings(settings.signin),
        lifetimes=auth_web.lifetimes(settings),
        now=datetime.now(UTC),
        replaces=request.cookies.get(auth_web.SESSION_COOKIE),
    )
    session.commit()  # failures count too
    if attempt.retry_after_s is not None:
        response = again(t["throttled"].format(s=attempt.retry_after_s), 429)
        response.headers["Retry-After"] = str(attempt.retry_after_s)
        return response
    if attempt.session_id is None:
        return again(t["failed"], 401)
    response = RedirectResponse(next_path or f"/login?lang={language}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    auth_web.set_session_cookie(response, attempt.session_id, settings)
    return response


@router.post("/logout", include_in_schema=False)
def logout(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    lang: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """End the browser's session (after the CSRF checks, so no other site can sign staff out)."""
    found = auth_web.signed_in(request, session, settings)
    if found is not None:
        try:
            auth_web.check_same_origin(request, settings)
            auth_web.check_token(
                found.csrf_token, request.headers.get(auth_web.CSRF_HEADER) or csrf_token
            )
        except CsrfFailed as exc:
            return app_error_response(exc)
        sessions.sign_out(session, session_id=request.cookies[auth_web.SESSION_COOKIE])
        session.commit()
    language = pick_language(request, lang)
    response = RedirectResponse(f"/login?lang={language}&signed_out=true", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    auth_web.clear_session_cookie(response, settings)
    return response


class CrewRef(BaseModel):
    id: int
    code: str | None


class SessionOut(BaseModel):
    """Who is calling and, for a signed-in page, the CSRF token its writes must send."""

    name: str
    role: str
    crew: CrewRef | None = Field(description="A crew user's crew (None: not on one)")
    via: str = Field(description="'session' (the sign-in cookie) or 'token' (a bearer token)")
    csrf_token: str | None = Field(
        description="Send it as the X-CSRF-Token header (or a csrf_token form field) with "
        "every write; None for a bearer token, which needs none"
    )
    csrf_header: str = auth_web.CSRF_HEADER
    expires_at: datetime | None = Field(description="When the session ends at the latest")
    idle_expires_at: datetime | None = Field(description="When it ends if unused until then")


@router.get(
    "/api/v1/session",
    response_model=SessionOut,
    summary="The signed-in user, role, crew, and the CSRF token for pages",
    tags=["staff"],
)
def current_session(
    request: Request, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    found = getattr(request.state, "signed_in", None)
    live = found if isinstance(found, sessions.SignedIn) else None
    crew = (
        CrewRef(id=principal.crew_id, code=_crew_code(session, settings, principal))
        if principal.crew_id is not None
        else None
    )
    body = SessionOut(
        name=principal.name,
        role=principal.role,
        crew=crew,
        via="session" if live is not None else "token",
        csrf_token=live.csrf_token if live is not None else None,
        expires_at=live.expires_at if live is not None else None,
        idle_expires_at=live.idle_expires_at if live is not None else None,
    )
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def login_redirect(request: Request) -> RedirectResponse:
    """Send the browser to sign in, and back to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": here}), status_code=303)
