"""The kernel's notice routes: the dev mail catcher's pages, and what every notice route
shares (the link signer, the error page a resident following a link sees).

The routes about requesters and incidents (preferences, unsubscribe, webhooks, an incident's
notices) are in ``geo311.api.notices``: requesters belong to work orders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from geo311.kernel.auth import service as auth_service
from geo311.kernel.deps import OptionalPrincipalDep, SettingsDep
from geo311.kernel.errors import Forbidden, NotFound
from geo311.kernel.notify import mailcatcher, pages
from geo311.kernel.notify.tokens import LinkSigner

router = APIRouter()


def get_signer(request: Request, settings: SettingsDep) -> LinkSigner:
    """Return the app's link signer (made once, from the settings)."""
    signer: LinkSigner | None = getattr(request.app.state, "link_signer", None)
    if signer is None:
        signer = LinkSigner.from_settings(settings)
        request.app.state.link_signer = signer
    return signer


SignerDep = Annotated[LinkSigner, Depends(get_signer)]


# --- the dev mail catcher -----------------------------------------------------------------


_LOOPBACK = {"127.0.0.1", "::1"}
# Headers a reverse proxy adds: a request that carries one came from elsewhere, whatever
# address the proxy connected from.
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def from_this_machine(request: Request) -> bool:
    """Return whether the request came from loopback directly, not through a proxy."""
    client = request.client.host if request.client is not None else ""
    if client not in _LOOPBACK:
        return False
    return not any(name in request.headers for name in _PROXY_HEADERS)


def dev_maildir(request: Request, settings: SettingsDep, principal: OptionalPrincipalDep) -> Path:
    """Return the dev mail catcher's Maildir if this caller may read it.

    The caught mails hold residents' addresses and their signed links, so: never when a real
    city is served (an external database, or the catcher off): 404. Otherwise an admin's
    token or signed-in session, or a browser on this machine (loopback, not through a proxy).
    """
    if not settings.dev_mail_enabled or settings.db.url is not None:
        raise NotFound(
            "The dev mail catcher is off: it runs only with the embedded database "
            "(GEO311_NOTIFY__DEV_MAIL__ENABLED)."
        )
    if principal is not None:
        auth_service.require_role(principal, ("admin",))
    elif not from_this_machine(request):
        raise Forbidden(
            "The dev mail catcher is open from this machine only, or with an admin's token."
        )
    return mailcatcher.maildir_path(settings)


DevMaildir = Annotated[Path, Depends(dev_maildir)]


@router.get("/dev/mail", response_class=HTMLResponse, include_in_schema=False)
def dev_mail(maildir: DevMaildir) -> HTMLResponse:
    return HTMLResponse(pages.devmail_list(mailcatcher.read_mails(maildir)))


@router.get("/dev/mail/{key}", response_class=HTMLResponse, include_in_schema=False)
def dev_mail_one(key: str, maildir: DevMaildir) -> HTMLResponse:
    mail = mailcatcher.read_mail(maildir, key)
    if mail is None:
        raise NotFound("No such caught mail.")
    return HTMLResponse(pages.devmail_detail(mail))
