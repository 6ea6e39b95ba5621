"""Notice routes about requesters and incidents: preferences and one-click unsubscribe,
webhook endpoints, the outbox of an incident. Thin: parse, call the service, commit, answer.

The dev mail catcher's pages, the link signer and the error page are the kernel's
(``geo311.kernel.notify.router``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field

from geo311.kernel.auth.contact import may_see_contact_details
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import AppError
from geo311.kernel.fields import Id
from geo311.kernel.notify import pages
from geo311.kernel.notify import service as notify_service
from geo311.kernel.notify.models import KINDS
from geo311.kernel.notify.router import SignerDep, error_page
from layers.deps import JurisdictionDep
from work_orders import service as work_orders_service

router = APIRouter()

Admin = Annotated[Principal, Depends(require_roles("admin"))]
Staff = Annotated[Principal, Depends(require_roles("dispatcher", "crew", "planner"))]


# --- preferences ----------------------------------------------------------------------------


@router.get("/notices/preferences", response_class=HTMLResponse, include_in_schema=False)
def preferences_page(t: str, session: SessionDep, signer: SignerDep) -> HTMLResponse:
    try:
        link = signer.read_preferences(t)
        language = work_orders_service.requester_language(
            session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
        )
    except AppError as exc:
        return error_page(exc)
    muted = notify_service.muted_kinds(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
    )
    return HTMLResponse(
        pages.preferences_form(language=language, token=t, muted=muted, saved=False)
    )


@router.post("/notices/preferences", response_class=HTMLResponse, include_in_schema=False)
def save_preferences(
    t: Annotated[str, Form()],
    session: SessionDep,
    signer: SignerDep,
    kinds: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    stop: Annotated[str | None, Form()] = None,
) -> HTMLResponse:
    try:
        link = signer.read_preferences(t)
    except AppError as exc:
        return error_page(exc)
    wanted = set() if stop == "all" else set(kinds)
    # A link naming a requester this service does not know is a 404, before anything is stored.
    work_orders_service.requester_language(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
    )
    muted = notify_service.set_muted_kinds(
        session,
        jurisdiction_id=link.jurisdiction_id,
        requester_id=link.requester_id,
        muted=[k for k in KINDS if k not in wanted],
    )
    session.commit()
    language = work_orders_service.requester_language(
        session, jurisdiction_id=link.jurisdiction_id, requester_id=link.requester_id
    )
    return HTMLResponse(pages.preferences_form(language=language, token=t, muted=muted, saved=True))


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
    work_orders_service.requester_language(
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
