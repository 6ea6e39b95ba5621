"""Open311 GeoReport v2 on top of intake and the work orders.

A POSTed request goes through the same intake as the report page (``parse_report_form`` and
``submit_report`` with channel ``open311``), so it is placed, snapped, deduplicated and
assigned the same way. Reading is built from reports, their incidents and the audit trail:
``service_request_id`` is the report's tracking id; a report that joined an incident someone
reported before is a duplicate whose parent is the incident's earliest report.
Services only flush; the route commits.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Row, Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from geo311.kernel.errors import AppError, FieldError, Forbidden, NotFound, ValidationFailed
from geo311.kernel.media.models import Photo
from geo311.kernel.media.store import MediaStore
from geo311.kernel.media.uploads import process_upload
from geo311.kernel.settings import Open311Settings, Settings
from geo311.resident.intake import service as intake
from geo311.resident.intake.models import Report
from geo311.resident.open311.attributes import AttributeDefinition, Choice, check_attributes
from geo311.resident.open311.errors import (
    BadApiKey,
    BadRequest,
    UnknownJurisdiction,
    UnknownRequest,
    UnknownService,
)
from geo311.resident.open311.models import ApiKey, ServiceAttribute, Submission
from geo311.resident.open311.query import RequestsQuery, UpdatesQuery, parse_w3c, present
from geo311.resident.open311.schemas import (
    AttributeAnswerOut,
    AttributeOut,
    ChoiceOut,
    DiscoveryOut,
    EndpointOut,
    ExtendedAttributesOut,
    ExtendedRequestOut,
    NoteOut,
    PhotoOut,
    PostedRequestOut,
    PostedUpdateOut,
    RequestOut,
    ServiceDefinitionOut,
    ServiceOut,
    TokenOut,
    UpdateOut,
)
from geo311.resident.open311.status import CLOSED_STATUSES, open311_status, update_description
from layers.models import Ward
from work_orders import audit, lookups, transitions
from work_orders import categories as category_service
from work_orders.models import AuditEvent, Incident, ServiceCategory
from work_orders.opening import CrewChooser
from work_orders.public_notes import PublicNote

API_KEY_PREFIX = "o311_"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# When this server's Open311 surface last changed (discovery's changeset).
CHANGESET = datetime(2026, 11, 22, tzinfo=UTC)
FORMATS = ["text/xml", "application/json"]
MEDIA_URL_MAX_CHARS = 2000
ACCOUNT_ID_MAX_CHARS = 200
UPDATE_MAX_CHARS = 4000
# FixMyStreet's statuses (its extended set included) that ask for a closed request to be
# reopened; every other status it sends is kept with the comment and changes nothing.
REOPEN_STATUSES = frozenset({"REOPEN", "REOPENED"})

# Intake names its fields for the report page; an Open311 client knows them by these names.
_OPEN311_FIELDS = {"lon": "long", "category": "service_code", "address": "address_string"}
_RENAMES = ((re.compile(r"\blon\b"), "long"), (re.compile(r"\bcategory\b"), "service_code"))


# --- jurisdiction and API keys -------------------------------------------------------------


def check_jurisdiction(requested: str | None, *, served: str) -> None:
    """Raise UnknownJurisdiction unless ``requested`` is absent or the served slug."""
    if requested is not None and requested.strip() and requested.strip() != served:
        raise UnknownJurisdiction(
            f"jurisdiction_id {requested.strip()!r} was not found: this server serves "
            f"{served!r} (jurisdiction_id may be left out)."
        )


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, *, jurisdiction_id: int, application: str) -> str:
    """Return a new API key for ``application``; only its hash is stored, so it is shown
    this once."""
    application = application.strip()
    if not application:
        raise ValidationFailed(
            "the application needs a name",
            errors=[FieldError("app", "the application needs a name", "missing")],
        )
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            jurisdiction_id=jurisdiction_id,
            application=application,
            key_sha256=_digest(key),
            key_prefix=key[:12],
        )
    )
    session.flush()
    return key


def revoke_api_keys(
    session: Session,
    *,
    jurisdiction_id: int,
    now: datetime,
    key: str | None = None,
    application: str | None = None,
) -> int:
    """Revoke one key, or every live key of an application; return how many were live."""
    if (key is None) == (application is None):
        raise ValueError("give exactly one of key and application")
    condition = (
        ApiKey.key_sha256 == _digest(key) if key is not None else ApiKey.application == application
    )
    rows = session.scalars(
        select(ApiKey).where(
            ApiKey.jurisdiction_id == jurisdiction_id, condition, ApiKey.revoked_at.is_(None)
        )
    ).all()
    for row in rows:
        row.revoked_at = now
    session.flush()
    return len(rows)


def list_api_keys(session: Session, *, jurisdiction_id: int) -> list[ApiKey]:
    """Return the jurisdiction's keys (live and revoked), oldest first."""
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.jurisdiction_id == jurisdiction_id).order_by(ApiKey.id)
        )
    )


def authenticate(session: Session, *, jurisdiction_id: int, key: str | None) -> int:
    """Return the id of the live key ``key`` of this jurisdiction, or raise BadApiKey."""
    if key is None or not key.strip():
        raise BadApiKey("api_key is required to POST a service request.")
    row = session.scalar(
        select(ApiKey).where(
            ApiKey.jurisdiction_id == jurisdiction_id, ApiKey.key_sha256 == _digest(key.strip())
        )
    )
    if row is None or row.revoked_at is not None:
        raise BadApiKey("Invalid api_key received: it is unknown or revoked.")
    return row.id


def _touch_key(session: Session, *, jurisdiction_id: int, key_id: int, now: datetime) -> None:
    # Last of all, so the key's row is locked only for the moment before the commit: one
    # application's concurrent POSTs do not queue behind each other's photo decoding.
    session.execute(
        update(ApiKey)
        .where(ApiKey.jurisdiction_id == jurisdiction_id, ApiKey.id == key_id)
        .values(last_used_at=now)
    )


# --- discovery, services, definitions -------------------------------------------------------


def discovery(*, endpoint_url: str, settings: Open311Settings) -> DiscoveryOut:
    """Return the discovery document for the endpoint at ``endpoint_url``."""
    return DiscoveryOut(
        changeset=CHANGESET,
        contact=settings.contact,
        key_service=settings.key_service,
        endpoints=[
            EndpointOut(
                specification=SPECIFICATION,
                url=endpoint_url,
                changeset=CHANGESET,
                type="production",
                formats=FORMATS,
            )
        ],
    )


def list_services(session: Session, *, jurisdiction_id: int) -> list[ServiceOut]:
    """Return the jurisdiction's active categories as Open311 services."""
    with_questions = set(
        session.scalars(
            select(ServiceAttribute.category_code)
            .where(ServiceAttribute.jurisdiction_id == jurisdiction_id)
            .distinct()
        )
    )
    return [
        ServiceOut(
            service_code=c.code,
            service_name=c.name,
            description=c.description,
            metadata=c.code in with_questions,
            keywords=", ".join(k for k in (c.group_code, c.asset_type) if k),
            group=c.group_code,
        )
        for c in category_service.list_categories(session, jurisdiction_id=jurisdiction_id)
    ]


def _definition(row: ServiceAttribute) -> AttributeDefinition:
    return AttributeDefinition(
        code=row.code,
        datatype=row.datatype,
        description=row.description,
        order=row.display_order,
        required=row.required,
        variable=row.variable,
        datatype_description=row.datatype_description,
        choices=tuple(Choice(key=str(c["key"]), name=str(c["name"])) for c in row.choices),
    )


def attribute_definitions(
    session: Session, *, jurisdiction_id: int, category_code: str
) -> list[AttributeDefinition]:
    """Return the questions of a category, in display order."""
    rows = session.scalars(
        select(ServiceAttribute)
        .where(
            ServiceAttribute.jurisdiction_id == jurisdiction_id,
            ServiceAttribute.category_code == category_code,
        )
        .order_by(ServiceAttribute.display_order, ServiceAttribute.code)
    )
    return [_definition(row) for row in rows]


def set_attributes(
    session: Session,
    *,
    jurisdiction_id: int,
    category_code: str,
    definitions: Sequence[AttributeDefinition],
) -> None:
    """Replace the questions of a category with ``definitions``."""
    if (
        category_service.get_category(session, jurisdiction_id=jurisdiction_id, code=category_code)
        is None
    ):
        raise UnknownService(f"There is no active category {category_code!r}.")
    session.execute(
        delete(ServiceAttribute).where(
            ServiceAttribute.jurisdiction_id == jurisdiction_id,
            ServiceAttribute.category_code == category_code,
        )
    )
    session.add_all(
        ServiceAttribute(
            jurisdiction_id=jurisdiction_id,
            category_code=category_code,
            code=d.code,
            datatype=d.datatype,
            variable=d.variable,
            required=d.required,
            display_order=d.order,
            description=d.description,
            datatype_description=d.datatype_description,
            choices=[{"key": c.key, "name": c.name} for c in d.choices],
        )
        for d in definitions
    )
    session.flush()


def _category(session: Session, jurisdiction_id: int, code: str) -> ServiceCategory:
    category = category_service.get_category(session, jurisdiction_id=jurisdiction_id, code=code)
    if category is None:
        raise UnknownService(
            f"service_code {code!r} was not found; GET services.xml lists the services.",
            errors=[FieldError("service_code", f"service_code {code!r} was not found", "unknown")],
        )
    return category


def service_definition(
    session: Session, *, jurisdiction_id: int, service_code: str
) -> ServiceDefinitionOut:
    """Return the service definition (its questions) of one service."""
    category = _category(session, jurisdiction_id, service_code)
    return ServiceDefinitionOut(
        service_code=category.code,
        attributes=[
            AttributeOut(
                variable=d.variable,
                code=d.code,
                datatype=d.datatype,
                required=d.required,
                datatype_description=d.datatype_description,
                order=d.order,
                description=d.description,
                values=[ChoiceOut(key=c.key, name=c.name) for c in d.choices],
            )
            for d in attribute_definitions(
                session, jurisdiction_id=jurisdiction_id, category_code=category.code
            )
        ],
    )


# --- POST requests, tokens ------------------------------------------------------------------


def _rename(text: str) -> str:
    for pattern, name in _RENAMES:
        text = pattern.sub(name, text)
    return text


def _in_open311_terms(exc: AppError) -> AppError:
    """Return an intake error as an Open311 client would word it (its field names)."""
    if isinstance(exc, NotFound | Forbidden):
        return exc
    errors = []
    for error in exc.errors:
        message = _rename(error.message)
        if error.field == "address":
            message = message.replace("address is", "address_string is", 1)
        if error.field == "name":
            message = "first_name and last_name together are longer than 200 characters"
        errors.append(
            FieldError(_OPEN311_FIELDS.get(error.field, error.field), message, error.code)
        )
    return BadRequest(
        _rename(exc.detail) if not errors else "; ".join(e.message for e in errors),
        errors=errors,
        extra=exc.extra,
    )


def _media_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(raw) > MEDIA_URL_MAX_CHARS:
        raise BadRequest(
            "media_url must be an http or https URL",
            errors=[FieldError("media_url", "media_url must be an http or https URL", "invalid")],
        )
    return raw


@dataclass(frozen=True)
class Posted:
    """The answer to an Open311 POST, and the incident the request opened (None: it joined
    one)."""

    answer: PostedRequestOut
    opened: Incident | None


def submit_request(
    session: Session,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    api_key_id: int,
    fields: Mapping[str, str],
    attributes: Mapping[str, Sequence[str]],
    photo: bytes | None,
    media: MediaStore,
    settings: Settings,
    now: datetime,
    more_photos: Sequence[bytes] = (),
    choose: CrewChooser | None = None,
) -> Posted:
    """Return the id and token of a request stored through intake, like a report from the
    page: placed in its ward, snapped to its asset, with its photo (the first one places it
    when no lat/long is given; ``more_photos`` are kept as the report's further photos), and
    the incident it opened, if any (``geo311.flows.submit_report`` gives its work order to a
    crew).

    ``account_id`` (the client's own id for the resident) is echoed in the answer and not
    stored: geo311 keeps no accounts of other applications. Flushes only."""
    fields = present(fields)
    account_id = fields.get("account_id")
    if account_id is not None and len(account_id) > ACCOUNT_ID_MAX_CHARS:
        message = f"account_id is longer than {ACCOUNT_ID_MAX_CHARS} characters"
        raise BadRequest(message, errors=[FieldError("account_id", message, "too_long")])
    code = fields.get("service_code")
    if code is None:
        raise BadRequest(
            "service_code is required; GET services.xml lists the services.",
            errors=[FieldError("service_code", "service_code is required", "missing")],
        )
    category = _category(session, jurisdiction_id, code)
    answers = check_attributes(
        attribute_definitions(session, jurisdiction_id=jurisdiction_id, category_code=code),
        attributes,
    )
    if "lat" not in fields and "long" not in fields and photo is None:
        given = [n for n in ("address_string", "address_id") if n in fields]
        detail = (
            f"lat and long are required: this server places requests by coordinates (or a "
            f"media photo's GPS) and cannot place one by {' or '.join(given)} alone."
            if given
            else "lat and long are required (or a media photo taken with location on)."
        )
        raise BadRequest(detail, errors=[FieldError("lat", detail, "missing")])
    media_url = _media_url(fields.get("media_url"))
    name = " ".join(n for n in (fields.get("first_name"), fields.get("last_name")) if n) or None
    try:
        draft = intake.parse_report_form(
            {
                "category": code,
                "lat": fields.get("lat"),
                "lon": fields.get("long"),
                "description": fields.get("description"),
                "email": fields.get("email"),
                "phone": fields.get("phone"),
                "address": fields.get("address_string"),
                "name": name,
            },
            channel="open311",
            settings=settings.intake,
        )
        submitted = intake.submit_report(
            session,
            jurisdiction_id=jurisdiction_id,
            jurisdiction_slug=jurisdiction_slug,
            draft=replace(draft, attributes=answers),
            photo=photo,
            media=media,
            media_settings=settings.media,
            now=now,
            choose=choose,
        )
        report = submitted.report
        for number, data in enumerate(more_photos, start=2):
            try:
                processed = process_upload(data, settings.media)
            except AppError as exc:
                raise _photo_error(exc, f"photo{number}") from exc
            intake.store_report_photo(
                session,
                report=report,
                processed=processed,
                media=media,
                jurisdiction_slug=jurisdiction_slug,
                now=now,
            )
    except AppError as exc:
        raise _in_open311_terms(exc) from exc
    token = str(uuid.uuid4())
    session.add(
        Submission(
            jurisdiction_id=jurisdiction_id,
            report_id=report.id,
            token=token,
            api_key_id=api_key_id,
            media_url=media_url,
        )
    )
    notice = _service_notice(session, category, report)
    session.flush()
    _touch_key(session, jurisdiction_id=jurisdiction_id, key_id=api_key_id, now=now)
    answer = PostedRequestOut(
        service_request_id=report.tracking_id,
        token=token,
        service_notice=notice,
        account_id=account_id,
    )
    return Posted(answer=answer, opened=submitted.opened)


def _photo_error(exc: AppError, field: str) -> AppError:
    """Return a photo's error naming the upload field it came in."""
    detail = f"{field}: {exc.detail}"
    return BadRequest(detail, errors=[FieldError(field, detail, exc.code)], extra=exc.extra)


def _service_notice(session: Session, category: ServiceCategory, report: Report) -> str:
    parent = _first_reports(session, report.jurisdiction_id, {report.incident_id}).get(
        report.incident_id
    )
    if parent is not None and parent != report.tracking_id:
        return (
            f"This problem was already reported as {parent}; your request is linked to it "
            "and closes with it."
        )
    return f"{category.name}: we aim to deal with it within {category.sla_hours:g} hours."


def token_request(session: Session, *, jurisdiction_id: int, token: str) -> TokenOut:
    """Return the service_request_id a POST's token stands for."""
    tracking_id = session.scalar(
        select(Report.tracking_id)
        .join(
            Submission,
            and_(
                Submission.jurisdiction_id == Report.jurisdiction_id,
                Submission.report_id == Report.id,
            ),
        )
        .where(Submission.jurisdiction_id == jurisdiction_id, Submission.token == token.strip())
    )
    if tracking_id is None:
        raise UnknownRequest(f"No service request was found for the token {token!r}.")
    return TokenOut(service_request_id=tracking_id, token=token.strip())


# --- GET requests ---------------------------------------------------------------------------


def _requests_select(jurisdiction_id: int) -> Select[Any]:
    return (
        select(
            Report.id.label("report_id"),
            Report.tracking_id,
            Report.description,
            Report.address,
            Report.reported_at,
            Report.created_at,
            Report.channel,
            Report.attributes,
            Report.category_code,
            Report.incident_id,
            func.ST_X(Report.geom).label("lon"),
            func.ST_Y(Report.geom).label("lat"),
            Incident.status,
            Incident.due_at,
            _updated().label("updated_at"),
            ServiceCategory.name.label("service_name"),
            Ward.code.label("ward_code"),
            Ward.name.label("ward_name"),
            Submission.media_url.label("submitted_media_url"),
        )
        .join(
            Incident,
            and_(
                Incident.jurisdiction_id == Report.jurisdiction_id,
                Incident.id == Report.incident_id,
            ),
        )
        .join(
            ServiceCategory,
            and_(
                ServiceCategory.jurisdiction_id == Report.jurisdiction_id,
                ServiceCategory.code == Report.category_code,
            ),
        )
        .outerjoin(
            Ward, and_(Ward.jurisdiction_id == Report.jurisdiction_id, Ward.id == Report.ward_id)
        )
        .outerjoin(
            Submission,
            and_(
                Submission.jurisdiction_id == Report.jurisdiction_id,
                Submission.report_id == Report.id,
            ),
        )
        .where(Report.jurisdiction_id == jurisdiction_id)
    )


def _updated() -> Any:
    # A report that joined an older incident was updated when it arrived, at the latest.
    return func.greatest(Incident.updated_at, Report.created_at)


def list_requests(
    session: Session, *, jurisdiction_id: int, query: RequestsQuery, media_url: str
) -> list[RequestOut]:
    """Return one page of requests, newest first. ``media_url`` prefixes public photo keys."""
    stmt = _requests_select(jurisdiction_id)
    if query.service_request_ids:
        stmt = stmt.where(Report.tracking_id.in_(query.service_request_ids))
    else:
        if query.service_codes:
            stmt = stmt.where(Report.category_code.in_(query.service_codes))
        if query.requested is not None:
            stmt = stmt.where(
                Report.reported_at.between(query.requested.start, query.requested.end)
            )
        if query.updated is not None:
            stmt = stmt.where(_updated().between(query.updated.start, query.updated.end))
        if query.statuses == {"closed"}:
            stmt = stmt.where(Incident.status.in_(CLOSED_STATUSES))
        elif query.statuses == {"open"}:
            stmt = stmt.where(Incident.status.not_in(CLOSED_STATUSES))
    stmt = (
        stmt.order_by(Report.reported_at.desc(), Report.id.desc())
        .offset(query.paging.offset)
        .limit(query.paging.page_size)
    )
    rows = session.execute(stmt).all()
    return _requests(
        session, jurisdiction_id, rows, extensions=query.extensions, media_url=media_url
    )


def get_request(
    session: Session,
    *,
    jurisdiction_id: int,
    service_request_id: str,
    extensions: bool,
    media_url: str,
) -> RequestOut:
    """Return one request by its service_request_id (the report's tracking id)."""
    row = session.execute(
        _requests_select(jurisdiction_id).where(
            Report.tracking_id == service_request_id.strip().upper()
        )
    ).one_or_none()
    if row is None:
        raise UnknownRequest(f"No service request has the id {service_request_id!r}.")
    return _requests(session, jurisdiction_id, [row], extensions=extensions, media_url=media_url)[0]


def public_events(
    session: Session, jurisdiction_id: int, incident_ids: set[int]
) -> dict[int, list[AuditEvent]]:
    """Return the incidents' public events, oldest first: what Open311 publishes (also read
    by the tracking page, so the two tell the same story)."""
    if not incident_ids:
        return {}
    events: dict[int, list[AuditEvent]] = defaultdict(list)
    for event in session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.jurisdiction_id == jurisdiction_id,
            AuditEvent.entity == "incident",
            AuditEvent.entity_id.in_(incident_ids),
            _is_public(),
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    ):
        events[event.entity_id].append(event)
    return events


def _is_public() -> Any:
    # A status change is public (with its chosen note, or its status's label); so is an
    # event with a public note and no status (a resident's comment). The rest is staff-only.
    return or_(AuditEvent.to_state.is_not(None), AuditEvent.public_note.is_not(None))


def _status_notes(history: Sequence[AuditEvent]) -> str | None:
    """Return the public note of the latest status change: why the status is what it is."""
    changes = [e for e in history if e.to_state is not None]
    return (changes[-1].public_note or None) if changes else None


def _first_reports(
    session: Session, jurisdiction_id: int, incident_ids: set[int]
) -> dict[int, str]:
    """Return the tracking id of each incident's earliest report: the parent of the others."""
    if not incident_ids:
        return {}
    first: dict[int, str] = {}
    # An incident has a handful of reports: reading them all is cheaper than asking for less.
    for incident_id, tracking_id in session.execute(
        select(Report.incident_id, Report.tracking_id)
        .where(Report.jurisdiction_id == jurisdiction_id, Report.incident_id.in_(incident_ids))
        .order_by(Report.incident_id, Report.reported_at, Report.id)
    ):
        first.setdefault(incident_id, tracking_id)
    return first


def _requests(
    session: Session,
    jurisdiction_id: int,
    rows: Sequence[Row[Any]],
    *,
    extensions: bool,
    media_url: str,
) -> list[RequestOut]:
    """Return the rows as requests, with their photos and history read in two queries."""
    base = media_url.rstrip("/")
    photos: dict[int, list[Photo]] = defaultdict(list)
    report_ids = [row.report_id for row in rows]
    if report_ids:
        for photo in session.scalars(
            select(Photo)
            .where(Photo.jurisdiction_id == jurisdiction_id, Photo.report_id.in_(report_ids))
            .order_by(Photo.id)
        ):
            assert photo.report_id is not None
            photos[photo.report_id].append(photo)
    incident_ids = {row.incident_id for row in rows}
    events = public_events(session, jurisdiction_id, incident_ids)
    parents = _first_reports(session, jurisdiction_id, incident_ids) if extensions else {}
    questions: dict[tuple[str, str], ServiceAttribute] = {}
    if extensions and rows:
        questions = {
            (q.category_code, q.code): q
            for q in session.scalars(
                select(ServiceAttribute).where(
                    ServiceAttribute.jurisdiction_id == jurisdiction_id,
                    ServiceAttribute.category_code.in_({row.category_code for row in rows}),
                )
            )
        }

    out: list[RequestOut] = []
    for row in rows:
        # A report hears of what happened to its incident since it arrived.
        history = [e for e in events.get(row.incident_id, []) if e.at >= row.created_at]
        own = photos.get(row.report_id, [])
        first = next((p for p in own if p.kind == "report"), None)
        request = RequestOut(
            service_request_id=row.tracking_id,
            status=open311_status(row.status),
            status_notes=_status_notes(history),
            service_name=row.service_name,
            service_code=row.category_code,
            description=row.description or None,
            agency_responsible=None,
            service_notice=None,
            requested_datetime=row.reported_at,
            updated_datetime=row.updated_at,
            expected_datetime=row.due_at,
            address=row.address,
            address_id=None,
            zipcode=None,
            lat=row.lat,
            long=row.lon,
            media_url=f"{base}/{first.public_key}" if first else row.submitted_media_url,
        )
        if not extensions:
            out.append(request)
            continue
        out.append(
            ExtendedRequestOut(
                **request.model_dump(),
                attributes=_answers(row.category_code, row.attributes, questions),
                extended_attributes=ExtendedAttributesOut(
                    channel=row.channel,
                    ward=row.ward_code,
                    ward_name=row.ward_name,
                    duplicate=parents[row.incident_id] != row.tracking_id,
                    parent_service_request_id=(
                        parents[row.incident_id]
                        if parents[row.incident_id] != row.tracking_id
                        else None
                    ),
                    status_detail=row.status,
                    photos=[
                        PhotoOut(
                            media_url=f"{base}/{p.public_key}",
                            thumbnail_url=f"{base}/{p.thumb_key}",
                            title="Submitted" if p.kind == "report" else "After",
                            width=p.width,
                            height=p.height,
                            created_at=p.created_at,
                        )
                        for p in own
                    ],
                ),
                notes=[
                    NoteOut(
                        at=e.at,
                        description=update_description(e.action, e.to_state, e.public_note),
                        type=e.action,
                    )
                    for e in history
                ],
            )
        )
    return out


def _answers(
    category_code: str,
    answers: Mapping[str, Any],
    questions: Mapping[tuple[str, str], ServiceAttribute],
) -> list[AttributeAnswerOut]:
    def order(code: str) -> tuple[int, str]:
        question = questions.get((category_code, code))
        return (question.display_order if question else 1 << 30, code)

    out = []
    # In the definition's order (JSONB keeps keys in an order of its own).
    for code in sorted(answers, key=order):
        answer = answers[code]
        question = questions.get((category_code, code))
        names = {str(c["key"]): str(c["name"]) for c in question.choices} if question else {}
        for value in answer if isinstance(answer, list) else [answer]:
            out.append(
                AttributeAnswerOut(
                    code=code,
                    label=question.description if question else code,
                    value=str(value),
                    name=names.get(str(value)),
                )
            )
    return out


# --- servicerequestupdates ------------------------------------------------------------------


def post_update(
    session: Session,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    api_key_id: int,
    fields: Mapping[str, str],
    photo: bytes | None,
    media: MediaStore,
    settings: Settings,
    now: datetime,
) -> PostedUpdateOut:
    """Return the update_id of a comment an application posted on a request (FixMyStreet's
    ``POST servicerequestupdates``): the resident-facing side speaking, so its text is a
    public update of the request's incident, seen by every request of it, and its photo one
    more photo of the request.

    The status it sends changes nothing, except a REOPEN on a closed request, which reopens
    it as a resident's "not fixed" does. Contact fields (names, email, phone) are not kept;
    a remote ``media_url`` is never fetched (no network at run time) and is ignored. Posting
    the same ``update_id`` again for the request returns the first answer. Flushes only.
    """
    fields = present(fields)
    errors: list[FieldError] = []
    tracking_id = fields.get("service_request_id", "").upper()
    if not tracking_id:
        errors.append(FieldError("service_request_id", "service_request_id is required", "missing"))
    description = fields.get("description")
    if description is not None and len(description) > UPDATE_MAX_CHARS:
        errors.append(
            FieldError(
                "description", f"description is longer than {UPDATE_MAX_CHARS} characters", "long"
            )
        )
    if description is None and photo is None:
        errors.append(
            FieldError("description", "description is required (or a photo file)", "missing")
        )
    sent_at = (
        parse_w3c(fields["updated_datetime"], "updated_datetime", errors)
        if "updated_datetime" in fields
        else None
    )
    if errors:
        raise BadRequest("; ".join(e.message for e in errors), errors=errors)
    report = session.scalar(
        select(Report).where(
            Report.jurisdiction_id == jurisdiction_id, Report.tracking_id == tracking_id
        )
    )
    if report is None:
        raise UnknownRequest(f"No service request has the id {tracking_id!r}.")
    external_id = fields.get("update_id")
    if external_id is not None:
        again = session.scalar(
            select(AuditEvent.id).where(
                AuditEvent.jurisdiction_id == jurisdiction_id,
                AuditEvent.entity == "incident",
                AuditEvent.action == "comment",
                AuditEvent.data.contains(
                    {"report": tracking_id, "api_key_id": api_key_id, "update_id": external_id}
                ),
            )
        )
        if again is not None:
            return PostedUpdateOut(update_id=f"{again}-{tracking_id}")
    status = (fields.get("status") or "").upper() or None
    incident = lookups.get_incident(
        session, jurisdiction_id=jurisdiction_id, incident_id=report.incident_id
    )
    actor = f"open311-key:{api_key_id}"
    if status in REOPEN_STATUSES and incident.status in ("completed", "closed"):
        transitions.transition(
            session,
            incident_or_work_order=incident,
            to="reopened",
            actor=actor,
            reason=f"an Open311 application sent status {status} for {tracking_id}",
            public_note=PublicNote("reopened_not_fixed"),
        )
    data: dict[str, Any] = {"report": tracking_id, "api_key_id": api_key_id}
    if external_id is not None:
        data["update_id"] = external_id
    if status is not None:
        data["status_sent"] = status
    if sent_at is not None:
        data["sent_at"] = sent_at.isoformat()
    if photo is not None:
        try:
            processed = process_upload(photo, settings.media)
        except AppError as exc:
            raise _photo_error(exc, "media") from exc
        stored = intake.store_report_photo(
            session,
            report=report,
            processed=processed,
            media=media,
            jurisdiction_slug=jurisdiction_slug,
            now=now,
        )
        data["photo_key"] = stored.public_key
    event = audit.record(
        session,
        jurisdiction_id=jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="comment",
        actor=actor,
        # No to_state (a comment is no status change): the status it was made in.
        from_state=incident.status,
        public_note=description if description is not None else PublicNote("photo_added"),
        data=data,
    )
    session.flush()
    _touch_key(session, jurisdiction_id=jurisdiction_id, key_id=api_key_id, now=now)
    return PostedUpdateOut(update_id=f"{event.id}-{tracking_id}")


def list_updates(
    session: Session, *, jurisdiction_id: int, query: UpdatesQuery, media_url: str
) -> list[UpdateOut]:
    """Return one page of updates in the window, oldest first: each public event of an
    incident, once for every request of it that had arrived by then. ``media_url`` prefixes
    the public key of a photo posted with an update."""
    base = media_url.rstrip("/")
    stmt = (
        select(
            AuditEvent.id,
            AuditEvent.action,
            AuditEvent.to_state,
            AuditEvent.from_state,
            AuditEvent.public_note,
            AuditEvent.data,
            AuditEvent.at,
            Report.tracking_id,
        )
        .join(
            Report,
            and_(
                Report.jurisdiction_id == AuditEvent.jurisdiction_id,
                Report.incident_id == AuditEvent.entity_id,
                Report.created_at <= AuditEvent.at,
            ),
        )
        .where(
            AuditEvent.jurisdiction_id == jurisdiction_id,
            AuditEvent.entity == "incident",
            _is_public(),
            AuditEvent.at.between(query.window.start, query.window.end),
        )
    )
    if query.service_request_ids:
        stmt = stmt.where(Report.tracking_id.in_(query.service_request_ids))
    stmt = (
        stmt.order_by(AuditEvent.at, AuditEvent.id, Report.id)
        .offset(query.paging.offset)
        .limit(query.paging.page_size)
    )
    return [
        UpdateOut(
            update_id=f"{row.id}-{row.tracking_id}",
            service_request_id=row.tracking_id,
            # A comment changes no status: it carries the one it was made in.
            status=open311_status(row.to_state or row.from_state),
            updated_datetime=row.at,
            description=update_description(row.action, row.to_state, row.public_note),
            media_url=f"{base}/{row.data['photo_key']}" if row.data.get("photo_key") else None,
            external_status_code=row.to_state or row.from_state,
        )
        for row in session.execute(stmt)
    ]
