"""Notice routes about requesters and incidents: preferences and one-click unsubscribe,
webhook endpoints, the outbox of an incident. Thin: parse, call the service, commit, answer.

The pages behind notice links ("Is it fixed?", preferences) are drawn in the pages' shell
(``maps.notice_pages``); the dev mail catcher's pages and the link signer are the kernel's
(``geo311.kernel.notify.router``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from geo311.kernel.auth.contact import may_see_contact_details
from geo311.kernel.auth.service import Principal
from geo311.kernel.auth.sessions import SignedIn
from geo311.kernel.deps import PageUserDep, SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import AppError
from geo311.kernel.fields import Id
from geo311.kernel.notify import service as notify_service
from geo311.kernel.notify.models import KINDS
from geo311.kernel.notify.router import SignerDep
from geo311.kernel.notify.templates import category_name, language_of
from geo311.kernel.notify.tokens import LinkSigner, PreferencesLink
from layers.deps import JurisdictionDep
from layers.models import Jurisdiction
from maps import i18n, notice_pages
from maps.router import page_context, page_response
from maps.shell import PageContext
from work_orders import answers, lookups

router = APIRouter()

Admin = Annotated[Principal, Depends(require_roles("admin"))]
Staff = Annotated[Principal, Depends(require_roles("dispatcher", "crew", "planner"))]


# --- the pages behind notice links: preferences, "Is it fixed?" -------------------------------
# Links in mails only ever show a page; the change itself is a POST from that page, because
# mail scanners open every link in a mail and must not reopen incidents or unsubscribe anyone.


def _notice_context(
    request: Request, jurisdiction: Jurisdiction, user: SignedIn | None, *, language: str, t: str
) -> PageContext:
    """The shell for a notice link's page: in the requester's language unless the switch was
    used, and a switch that keeps the link's token."""
    context = page_context(request, jurisdiction, user=user)
    if "lang" not in request.query_params:
        context = replace(
            context,
            language=i18n.choose(query=language_of(language), cookie=None, accept_language=None),
        )
    return replace(context, language_query=(("t", t),))


def _link_problem(
    request: Request, jurisdiction: Jurisdiction, user: SignedIn | None, exc: AppError
) -> HTMLResponse:
    context = page_context(request, jurisdiction, user=user)
    html = notice_pages.link_problem(context, title=exc.title, detail=exc.detail)
    response = page_response(request, html, context)
    response.status_code = exc.status
    return response


def _preferences_link(
    session: Session, signer: LinkSigner, token: str
) -> tuple[PreferencesLink, str]:
    """Return a preferences link and its requester's language; raise AppError (a bad link,
    or a requester this service does not know: refused before anything is stored)."""
    link = signer.read_preferences(token)
    language = lookups.requester_language(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
    )
    return link, language


def _preferences_response(
    request: Request,
    jurisdiction: Jurisdiction,
    user: SignedIn | None,
    *,
    language: str,
    t: str,
    muted: Sequence[str],
    saved: bool,
) -> HTMLResponse:
    context = _notice_context(request, jurisdiction, user, language=language, t=t)
    html = notice_pages.preferences_form(context, token=t, muted=muted, saved=saved)
    return page_response(request, html, context)


@router.get("/notices/preferences", response_class=HTMLResponse, include_in_schema=False)
def preferences_page(
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    jurisdiction: JurisdictionDep,
    user: PageUserDep,
    t: Annotated[str, Query(max_length=500)] = "",
) -> HTMLResponse:
    try:
        link, language = _preferences_link(session, signer, t)
    except AppError as exc:
        return _link_problem(request, jurisdiction, user, exc)
    muted = notify_service.muted_kinds(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
    )
    return _preferences_response(
        request, jurisdiction, user, language=language, t=t, muted=muted, saved=False
    )


@router.post("/notices/preferences", response_class=HTMLResponse, include_in_schema=False)
def save_preferences(
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    jurisdiction: JurisdictionDep,
    user: PageUserDep,
    t: Annotated[str, Form(max_length=500)] = "",
    kinds: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    stop: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    try:
        link, language = _preferences_link(session, signer, t)
    except AppError as exc:
        return _link_problem(request, jurisdiction, user, exc)
    wanted = set() if stop == "all" else set(kinds)
    muted = notify_service.set_muted_kinds(
        session,
        jurisdiction_id=link.jurisdiction_id,
        requester_id=link.requester_id,
        muted=[k for k in KINDS if k not in wanted],
    )
    session.commit()
    return _preferences_response(
        request, jurisdiction, user, language=language, t=t, muted=muted, saved=True
    )


@router.get("/notices/answer", response_class=HTMLResponse, include_in_schema=False)
def answer_page(
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    jurisdiction: JurisdictionDep,
    user: PageUserDep,
    t: Annotated[str, Query(max_length=500)] = "",
    a: Literal["fixed", "not_fixed"] | None = None,
) -> HTMLResponse:
    # Only a page: link scanners in mail systems open links, and must not reopen anything.
    try:
        link = signer.read_answer(t)
        info = answers.describe_answer_link(session, link=link)
    except AppError as exc:
        return _link_problem(request, jurisdiction, user, exc)
    context = _notice_context(request, jurisdiction, user, language=info.language, t=t)
    html = notice_pages.answer_form(
        context,
        token=t,
        chosen=a,
        category=category_name(
            context.language, {"category_code": info.category_code, "category": info.category}
        ),
        tracking_id=info.tracking_id or f"#{link.incident_id}",
    )
    return page_response(request, html, context)


@router.post("/notices/answer", response_class=HTMLResponse, include_in_schema=False)
def answer_form(
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    jurisdiction: JurisdictionDep,
    user: PageUserDep,
    answer: Annotated[Literal["fixed", "not_fixed"], Form()],
    t: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    try:
        link = signer.read_answer(t)
        result = answers.answer_closure(session, link=link, answer=answer)
        session.commit()
    except AppError as exc:
        return _link_problem(request, jurisdiction, user, exc)
    context = _notice_context(request, jurisdiction, user, language=result.language, t=t)
    html = notice_pages.answer_result(
        context, outcome=result.outcome, tracking_id=result.tracking_id
    )
    return page_response(request, html, context)


@router.post(
    "/notices/unsubscribe",
    response_class=PlainTextResponse,
    summary="One-click unsubscribe (RFC 8058): stop every notice to this requester",
    tags=["notices"],
)
def unsubscribe(
    t: Annotated[str, Query(description="The token from the List-Unsubscribe header")],
    session: SessionDep,
    signer: SignerDep,
) -> PlainTextResponse:
    link = signer.read_preferences(t)
    lookups.requester_language(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
    )
    notify_service.set_muted_kinds(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id, muted=KINDS
    )
    session.commit()
    return PlainTextResponse("Unsubscribed: no more notices will be sent.")


# --- webhooks -----------------------------------------------------------------------------


class WebhookIn(BaseModel):
    url: str = Field(description="Absolute http(s) URL that receives signed POSTs")
    kinds: list[str] = Field(default=list(KINDS), description="Which notices: received …")
    description: str = ""


class WebhookOut(BaseModel):
    id: int
    url: str
    kinds: list[str]
    active: bool
    description: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signing secret; shown this once")


@router.post(
    "/api/v1/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    summary="Add a webhook endpoint (signed with HMAC-SHA256; see Geo311-Signature)",
    tags=["notices"],
)
def create_webhook(
    body: WebhookIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    _: Admin,
) -> WebhookCreated:
    endpoint = notify_service.create_webhook(
        session,
        jurisdiction_id=jurisdiction.id,
        url=body.url,
        kinds=body.kinds,
        description=body.description,
        allow_private=settings.notify.webhook_allow_private,
    )
    session.commit()
    return WebhookCreated(
        id=endpoint.id,
        url=endpoint.url,
        kinds=endpoint.kinds,
        active=endpoint.active,
        description=endpoint.description,
        created_at=endpoint.created_at,
        secret=endpoint.secret,
    )


@router.get(
    "/api/v1/webhooks",
    response_model=list[WebhookOut],
    summary="Webhook endpoints (without secrets)",
    tags=["notices"],
)
def list_webhooks(session: SessionDep, jurisdiction: JurisdictionDep, _: Admin) -> list[WebhookOut]:
    return [
        WebhookOut(
            id=e.id,
            url=e.url,
            kinds=e.kinds,
            active=e.active,
            description=e.description,
            created_at=e.created_at,
        )
        for e in notify_service.list_webhooks(session, jurisdiction_id=jurisdiction.id)
    ]


@router.delete(
    "/api/v1/webhooks/{endpoint_id}",
    status_code=204,
    summary="Stop sending to a webhook endpoint",
    tags=["notices"],
)
def delete_webhook(
    endpoint_id: Id, session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> None:
    notify_service.deactivate_webhook(
        session, jurisdiction_id=jurisdiction.id, endpoint_id=endpoint_id
    )
    session.commit()


# --- the outbox of an incident ------------------------------------------------------------


class NoticeOut(BaseModel):
    id: int
    kind: str
    channel: str
    recipient: str | None = Field(
        description="E-mail address, phone number or webhook URL; null for e-mail and SMS "
        "when the caller may not see contact details (planners)"
    )
    language: str
    status: str
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    idempotency_key: str


@router.get(
    "/api/v1/incidents/{incident_id}/notices",
    response_model=list[NoticeOut],
    summary="Every notice owed about an incident and how its delivery went (staff)",
    tags=["notices"],
)
def incident_notices(
    incident_id: Id, session: SessionDep, jurisdiction: JurisdictionDep, principal: Staff
) -> list[NoticeOut]:
    # The kernel does not know which crew works an incident, so a crew sees no recipients here
    # (its own work's requesters are on the staff report view).
    contact = may_see_contact_details(principal, work_crew_id=None)
    return [
        NoticeOut(
            id=n.id,
            kind=n.kind,
            channel=n.channel,
            recipient=n.recipient if contact or n.channel == "webhook" else None,
            language=n.language,
            status=n.status,
            attempts=n.attempts,
            next_attempt_at=n.next_attempt_at,
            sent_at=n.sent_at,
            # A server's refusal quotes the address ("550 <ana@…>: no such mailbox").
            last_error=(
                n.last_error
                if contact or n.channel == "webhook" or n.last_error is None
                else n.last_error.replace(n.recipient, "[hidden]")
            ),
            idempotency_key=n.idempotency_key,
        )
        for n in notify_service.notices_of_incident(
            session, jurisdiction_id=jurisdiction.id, incident_id=incident_id
        )
    ]
