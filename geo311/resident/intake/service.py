"""Intake: check a resident's report, place it, store it with its photo, and show it back."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import (
    CTE,
    ColumnElement,
    DateTime,
    Float,
    Insert,
    Select,
    SmallInteger,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, make_transient_to_detached

from geo311.kernel.errors import AppError, FieldError, NotFound, ValidationFailed
from geo311.kernel.media import service as media_service
from geo311.kernel.media.models import Photo
from geo311.kernel.media.photos import ProcessedPhoto
from geo311.kernel.media.store import MediaStore
from geo311.kernel.media.uploads import process_upload
from geo311.kernel.notify import outbox
from geo311.kernel.notify.addresses import NotAnAddress, normalize_email
from geo311.kernel.notify.models import Notice
from geo311.kernel.notify.outbox import NoticeDraft
from geo311.kernel.settings import DedupSettings, IntakeSettings, MediaSettings
from geo311.resident.dedup import learning, placing
from geo311.resident.dedup.models import DedupModel
from geo311.resident.intake.models import CHANNELS, Report
from geo311.resident.intake.schemas import (
    AssetOut,
    ContactOut,
    PointGeoJSON,
    ReportOut,
    StaffReportOut,
    WardOut,
)
from geo311.resident.intake.tracking import new_tracking_id
from layers import service as layers_service
from layers.models import Jurisdiction
from work_orders import changes, incidents, lifecycle, opening, sla
from work_orders.changes import AnalyticsChange
from work_orders.models import (
    AuditEvent,
    BusinessCalendar,
    Incident,
    Requester,
    ServiceCategory,
    Subscription,
    WorkOrder,
)
from work_orders.opening import CrewChooser

_PHONE = re.compile(r"^\+?[0-9 ()./-]{7,24}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class OutsideJurisdiction(AppError):
    status = 422
    code = "outside_jurisdiction"
    title = "The location is outside the area this service covers"


class LocationMissing(AppError):
    status = 422
    code = "location_missing"
    title = "No location: drop a pin or send a photo with GPS"


class UnknownCategory(AppError):
    status = 422
    code = "unknown_category"
    title = "Unknown service category"


@dataclass(frozen=True)
class ReportDraft:
    """A report's fields, checked: everything but what needs the database or the photo."""

    category: str
    lat: float | None
    lon: float | None
    description: str
    email: str | None
    phone: str | None
    language: str
    channel: str
    address: str | None = None
    # Kept only alongside an email or phone: a name alone reaches nobody.
    name: str | None = None
    # Answers to the category's questions, already checked: {code: value or [values]}.
    attributes: dict[str, Any] = field(default_factory=dict)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _coordinate(raw: str | None, name: str, limit: float, errors: list[FieldError]) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        errors.append(FieldError(name, f"{name} must be a number, not {raw!r}", "not_a_number"))
        return None
    if not math.isfinite(value) or not -limit <= value <= limit:
        errors.append(
            FieldError(name, f"{name} must be between -{limit:g} and {limit:g}", "out_of_range")
        )
        return None
    return value


def parse_report_form(
    fields: Mapping[str, str | None], *, channel: str, settings: IntakeSettings
) -> ReportDraft:
    """Return the checked draft of a submitted form, or raise ValidationFailed listing every
    bad field at once."""
    errors: list[FieldError] = []
    category = _clean(fields.get("category"))
    if category is None:
        errors.append(FieldError("category", "category is required", "missing"))
    lat = _coordinate(_clean(fields.get("lat")), "lat", 90.0, errors)
    lon = _coordinate(_clean(fields.get("lon")), "lon", 180.0, errors)
    if (_clean(fields.get("lat")) is None) != (_clean(fields.get("lon")) is None):
        missing = "lon" if _clean(fields.get("lon")) is None else "lat"
        errors.append(FieldError(missing, "lat and lon must be given together", "missing"))
    description = (fields.get("description") or "").strip()
    if len(description) > settings.description_max_chars:
        errors.append(
            FieldError(
                "description",
                f"description is {len(description)} characters; "
                f"at most {settings.description_max_chars} are allowed",
                "too_long",
            )
        )
    email = _clean(fields.get("email"))
    if email is not None:
        try:
            email = normalize_email(email)
        except NotAnAddress as exc:
            errors.append(FieldError("email", f"email is not an e-mail address: {exc}", "invalid"))
    phone = _clean(fields.get("phone"))
    if phone is not None and (not _PHONE.match(phone) or sum(c.isdigit() for c in phone) < 7):
        errors.append(FieldError("phone", "phone is not a phone number", "invalid"))
    language = _clean(fields.get("language")) or "en"
    if len(language) > 16 or not _LANGUAGE.match(language):
        errors.append(
            FieldError("language", "language must be a language tag like 'en' or 'es'", "invalid")
        )
    address = _clean(fields.get("address"))
    if address is not None and len(address) > 500:
        errors.append(FieldError("address", "address is longer than 500 characters", "too_long"))
    name = _clean(fields.get("name"))
    if name is not None and len(name) > 200:
        errors.append(FieldError("name", "name is longer than 200 characters", "too_long"))
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    assert category is not None
    return ReportDraft(
        category=category,
        lat=lat,
        lon=lon,
        description=description,
        email=email,
        phone=phone,
        language=language,
        channel=channel,
        address=address,
        name=name,
    )


@dataclass(frozen=True)
class Shown:
    """What a stored report's public view shows beyond the report's own columns, as it was
    written (so the answer to its POST needs no read back)."""

    status: str
    ward: layers_service.WardRef
    asset: layers_service.AssetRef | None
    lon: float
    lat: float
    photo_keys: tuple[str, str] | None  # (public copy, thumbnail)
    updated_at: datetime
    report_count: int


@dataclass(frozen=True)
class Submitted:
    """A stored report, the incident it opened (None: it joined one), and what its view
    shows."""

    report: Report
    opened: Incident | None
    shown: Shown | None = None


def submit_report(
    session: Session,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    draft: ReportDraft,
    photo: bytes | ProcessedPhoto | None,
    media: MediaStore,
    media_settings: MediaSettings,
    now: datetime,
    dedup_settings: DedupSettings | None = None,
    choose: CrewChooser | None = None,
) -> Submitted:
    """Return the stored report (placed in its ward, snapped to its asset, with its photo) and
    the incident it opened, if it opened one rather than joining one.

    Intake does not know dispatch: the use case (``geo311.flows.submit_report``) gives
    ``choose``, the assignment rules, and an incident opened here has its work order written
    already with the crew they chose; without it (or with no crew found) the work order opens
    on no crew. ``photo``: the bytes, or the photo decoded before the session opened.
    Flushes only; the caller commits. On rollback, the photo files are removed again.

    Resolve, decide, write: one statement reads the category (with its calendar, webhooks
    and dedup's fitted model), the ward, the asset and the new rows' ids; dedup takes the
    area's locks and searches (two statements, plus the chosen incident's row lock when the
    report joins one); the crew is chosen (one statement, when it opens one); and one
    statement writes every row (incident, work order, audit trail, requester, report,
    subscription, photo, notices owed), after which the notices' delivery job is queued.
    """
    # Decoded already by a caller that had it decoded before its session opened (a decode
    # may wait for memory and must not hold a connection meanwhile).
    processed = (
        photo
        if isinstance(photo, ProcessedPhoto)
        else process_upload(photo, media_settings)
        if photo
        else None
    )
    if draft.lat is not None and draft.lon is not None:
        lat, lon, source = draft.lat, draft.lon, "pin"
    elif processed is not None and processed.gps is not None:
        lat, lon, source = processed.gps.lat, processed.gps.lon, "exif"
    else:
        _resolve(session, jurisdiction_id=jurisdiction_id, draft=draft, at=None)
        detail = (
            "The photo carries no GPS position; drop a pin (lat and lon)."
            if processed is not None
            else "Give lat and lon, or send a photo taken with location on."
        )
        raise LocationMissing(detail, errors=[FieldError("lat", "location is required", "missing")])

    resolved = _resolve(session, jurisdiction_id=jurisdiction_id, draft=draft, at=(lon, lat, now))
    found, ward, asset = resolved.found, resolved.ward, resolved.asset
    category = found.category
    if ward is None:
        raise OutsideJurisdiction(
            f"The point ({lat:.6f}, {lon:.6f}) is not inside any ward of this jurisdiction.",
            extra={"lat": lat, "lon": lon, "location_source": source},
        )
    assert resolved.ids is not None
    report_id, requester_id, incident_id, work_order_id = resolved.ids

    tracking_id = new_tracking_id()
    actor = f"resident:{draft.channel}"
    # Match-or-open: a duplicate joins the incident it is about (geo311.resident.dedup).
    match = placing.match_report(
        session,
        report=placing.IncomingReport(
            category=category,
            lon=lon,
            lat=lat,
            at=now,
            asset_id=asset.id if asset else None,
            address=draft.address,
            photo_hash=processed.phash if processed else None,
            description=draft.description,
        ),
        settings=dedup_settings or DedupSettings(),
        model=learning.model_of(category.code, found.also[0]),
    )
    rows = _Rows()
    incident = match.incident
    opened: Incident | None = None
    if incident is None:
        opened = _open_rows(
            session,
            rows,
            found=found,
            incident_id=incident_id,
            work_order_id=work_order_id,
            lon=lon,
            lat=lat,
            ward=ward,
            asset=asset,
            now=now,
            choose=choose,
            opened_by=(actor, {"report": tracking_id, "location_source": source}),
        )
        incident = opened
        incident_point = (lon, lat)
    else:
        rows.audit.append(
            placing.joined_event(
                session,
                incident=incident,
                decision=match.decision,
                tracking_id=tracking_id,
                actor=actor,
            )
        )
        point = to_shape(incident.geom)
        incident_point = (point.x, point.y)

    requester = None
    if requester_id is not None:
        requester = {
            "jurisdiction_id": jurisdiction_id,
            "id": requester_id,
            "email": draft.email,
            "phone": draft.phone,
            "name": draft.name,
            "language": draft.language,
        }
        rows.requester = requester
    placement = placing.Placement(
        incident=incident, decision=match.decision, opened=opened is not None
    )
    report_values: dict[str, Any] = {
        "jurisdiction_id": jurisdiction_id,
        "id": report_id,
        "tracking_id": tracking_id,
        "incident_id": incident.id,
        "requester_id": requester_id,
        "category_code": category.code,
        "description": draft.description,
        "address": draft.address,
        "geom": WKTElement(f"POINT({lon} {lat})", srid=4326),
        "location_source": source,
        "ward_id": ward.id,
        "asset_id": asset.id if asset else None,
        "channel": draft.channel,
        "language": draft.language,
        "attributes": dict(draft.attributes),
        "reported_at": now,
        **placement.report_fields(),
    }
    rows.report = report_values
    if requester_id is not None:
        rows.subscription = {
            "jurisdiction_id": jurisdiction_id,
            "incident_id": incident.id,
            "requester_id": requester_id,
            "report_id": report_id,
        }
    if processed is not None:
        rows.photo = media_service.stage_photo(
            session,
            media,
            processed,
            jurisdiction_id=jurisdiction_id,
            jurisdiction_slug=jurisdiction_slug,
            kind="report",
            report_id=report_id,
            now=now,
        )
    context = opening.notice_context(
        incident_id=incident.id,
        category_code=incident.category_code,
        category_name=category.name,
        city=found.jurisdiction.name,
        status=incident.status,
        lon=incident_point[0],
        lat=incident_point[1],
    )
    rows.notices = opening.received_notices(
        jurisdiction_id=jurisdiction_id,
        incident_id=incident.id,
        context=context,
        requester=None
        if requester_id is None
        else (requester_id, draft.email, draft.phone, draft.language),
        tracking_id=tracking_id,
        webhooks=found.received_webhooks if opened is not None else (),
    )
    _write(session, rows)
    report = _persistent(session, Report(**report_values))
    shown = Shown(
        status=incident.status,
        ward=ward,
        asset=asset,
        lon=lon,
        lat=lat,
        photo_keys=None
        if rows.photo is None
        else (rows.photo["public_key"], rows.photo["thumb_key"]),
        updated_at=now if opened is not None else incident.updated_at,
        report_count=1 if opened is not None else match.report_count + 1,
    )
    return Submitted(report=report, opened=opened, shown=shown)


@dataclass(frozen=True)
class _Resolved:
    found: incidents.CategoryTerms
    ward: layers_service.WardRef | None
    asset: layers_service.AssetRef | None
    # The new rows' ids: report, requester (None without a contact), incident, work order.
    ids: tuple[int, int | None, int, int] | None


def _next_id(table: str) -> ColumnElement[Any]:
    # Drawn with the resolve, so every row of the report is built (ids and the keys of the
    # notices that name them) before the one statement that writes them all.
    return func.nextval(func.pg_get_serial_sequence(table, "id"))


# The resolve statement, with and without the report's place (and with or without a
# requester's id to draw): built once each, run with bound parameters.
_RESOLVES: dict[tuple[bool, bool], Select[Any]] = {}


def _resolve_statement(*, placed: bool, contact: bool) -> Select[Any]:
    jid = bindparam("jid", type_=SmallInteger)
    code = bindparam("code", type_=String)
    # Every table is read for the city :jid, so on Citus the statement goes to that city's
    # one shard (the ids come from a CTE below that reads no table).
    # Dedup's fitted model for the category (learning.model_column, with parameters).
    also: list[ColumnElement[Any]] = [
        select(DedupModel.params)
        .where(DedupModel.jurisdiction_id == jid, DedupModel.category_code == code)
        .scalar_subquery()
    ]
    if placed:
        lon, lat = bindparam("lon", type_=Float), bindparam("lat", type_=Float)
        also += [
            layers_service.ward_column(
                jurisdiction_id=jid, lon=lon, lat=lat, at=bindparam("at", type_=DateTime(True))
            ),
            layers_service.nearest_asset_column(
                jurisdiction_id=jid,
                asset_type=ServiceCategory.asset_type,
                lon=lon,
                lat=lat,
                radius_m=ServiceCategory.snap_radius_m,
            ),
        ]
        # The ids come from a CTE of their own that reads no table: on Citus it runs on the
        # coordinator first, so the rest of the statement stays on the city's one shard (a
        # volatile nextval beside the distributed tables would send it to every shard).
        ids = (
            select(
                _next_id("reports").label("report"),
                (_next_id("requesters") if contact else null()).label("requester"),
                _next_id("incidents").label("incident"),
                _next_id("work_orders").label("work_order"),
            )
            .cte("new_ids")
            .prefix_with("MATERIALIZED")
        )
        also += [select(column).scalar_subquery() for column in ids.c]
    # Core columns, not the models: loading three ORM objects per report cost more than the
    # rest of the resolve (they are built once per change instead, see _known).
    return incidents.of_category(
        select(
            *(column for _, column in _CATEGORY_COLUMNS),
            *_CALENDAR_COLUMNS,
            Jurisdiction.name,
            incidents.received_webhooks_column(jurisdiction_id=jid),
            *also,
        ),
        jurisdiction_id=jid,
        code=code,
    )


# What the resolve reads of the category (every column, by attribute name), of its business
# calendar, and of its jurisdiction: the values a category's terms are built from.
_CATEGORY_COLUMNS: tuple[tuple[str, ColumnElement[Any]], ...] = tuple(
    (prop.key, prop.columns[0]) for prop in sa_inspect(ServiceCategory).column_attrs
)
_CALENDAR_COLUMNS = (BusinessCalendar.timezone, BusinessCalendar.hours, BusinessCalendar.holidays)
_TERMS_WIDTH = len(_CATEGORY_COLUMNS) + len(_CALENDAR_COLUMNS) + 1


@dataclass(frozen=True)
class _Known:
    """A category's terms as built from ``values`` (the resolve's first columns)."""

    values: tuple[Any, ...]
    category: ServiceCategory
    terms: opening.Terms
    jurisdiction: Jurisdiction


# Per process: the terms last built for each (database, jurisdiction, category). Each report
# reads the category's, calendar's and city's current values anyway (in the resolve, which it
# needs for the ward and asset), and an entry is used only while they are the same, so a
# change made by anyone is seen by the next report; what it saves is building ORM objects and
# parsing the calendar on every report. The objects are transient (in no session) and only
# read, so threads can share them.
_KNOWN: dict[tuple[URL, int, str], _Known] = {}
_KNOWN_LOCK = threading.Lock()


def _known(session: Session, *, jurisdiction_id: int, code: str, values: tuple[Any, ...]) -> _Known:
    """Return the category's terms built from ``values``, reusing the ones last built from
    the same values."""
    key = (session.get_bind().engine.url, jurisdiction_id, code)
    with _KNOWN_LOCK:
        known = _KNOWN.get(key)
    if known is not None and known.values == values:
        return known
    n = len(_CATEGORY_COLUMNS)
    category = ServiceCategory(
        **{name: v for (name, _), v in zip(_CATEGORY_COLUMNS, values[:n], strict=True)}
    )
    timezone, hours, holidays, city = values[n:]
    calendar = (
        None
        if timezone is None
        else sla.parse_calendar(timezone=timezone, hours=hours, holidays=holidays)
    )
    known = _Known(
        values=values,
        category=category,
        terms=opening.Terms.of(category, calendar),
        jurisdiction=Jurisdiction(id=jurisdiction_id, name=city),
    )
    with _KNOWN_LOCK:
        _KNOWN[key] = known
    return known


def _resolve(
    session: Session,
    *,
    jurisdiction_id: int,
    draft: ReportDraft,
    at: tuple[float, float, datetime] | None,
) -> _Resolved:
    """Return the category and, given the report's (lon, lat, time), its ward, its asset and
    the ids of its rows, in one statement; raise UnknownCategory."""
    shape = (at is not None, bool(draft.email or draft.phone))
    statement = _RESOLVES.get(shape)
    if statement is None:
        statement = _RESOLVES[shape] = _resolve_statement(placed=shape[0], contact=shape[1])
    params: dict[str, Any] = {"jid": jurisdiction_id, "code": draft.category}
    if at is not None:
        params.update(lon=at[0], lat=at[1], at=at[2])
    # On the session's connection: a Core statement needs none of the ORM's execution work.
    row = session.connection().execute(statement, params).one_or_none()
    found = None
    if row is not None:
        known = _known(
            session,
            jurisdiction_id=jurisdiction_id,
            code=draft.category,
            values=tuple(row[:_TERMS_WIDTH]),
        )
        if known.category.active:
            found = incidents.CategoryTerms(
                known.category,
                known.terms,
                known.jurisdiction,
                incidents.received_webhooks_of(row[_TERMS_WIDTH]),
                tuple(row[_TERMS_WIDTH + 1 :]),
            )
    if found is None:
        raise UnknownCategory(
            f"There is no service category {draft.category!r}; GET /api/v1/categories lists them.",
            errors=[FieldError("category", f"unknown category {draft.category!r}", "unknown")],
        )
    if at is None:
        return _Resolved(found=found, ward=None, asset=None, ids=None)
    _, ward, asset, report_id, requester_id, incident_id, work_order_id = found.also
    return _Resolved(
        found=found,
        ward=layers_service.ward_of(ward),
        asset=layers_service.asset_of(asset),
        ids=(
            int(report_id),
            None if requester_id is None else int(requester_id),
            int(incident_id),
            int(work_order_id),
        ),
    )


@dataclass
class _Rows:
    """Every row one report writes, as columns, for the one statement that writes them."""

    incident: dict[str, Any] | None = None
    work_order: dict[str, Any] | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    requester: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None
    photo: dict[str, Any] | None = None
    notices: list[NoticeDraft] = field(default_factory=list)


def _open_rows(
    session: Session,
    rows: _Rows,
    *,
    found: incidents.CategoryTerms,
    incident_id: int,
    work_order_id: int,
    lon: float,
    lat: float,
    ward: layers_service.WardRef,
    asset: layers_service.AssetRef | None,
    now: datetime,
    choose: CrewChooser | None,
    opened_by: tuple[str, dict[str, Any]],
) -> Incident:
    """Add the rows of a new incident (with its work order, already on the crew ``choose``
    picks, and their audit trail) to ``rows``; return the incident as the session holds it."""
    category, terms = found.category, found.terms
    times = terms.due_times(now)
    crew = None
    if choose is not None:
        crew = choose(
            session,
            opening.NewWork(
                jurisdiction_id=category.jurisdiction_id,
                category_code=category.code,
                asset_type=asset.asset_type if asset is not None else category.asset_type,
                ward_code=ward.code,
                due_at=times.due_at,
                opened_at=now,
            ),
        )
    rows.incident = opening.incident_values(
        terms,
        incident_id=incident_id,
        lon=lon,
        lat=lat,
        ward_id=ward.id,
        asset_id=asset.id if asset else None,
        opened_at=now,
        times=times,
        crew=crew,
    )
    # Stated, not the server's clock, so the answer shows what is stored.
    rows.incident["updated_at"] = now
    rows.work_order = opening.work_order_values(
        terms,
        work_order_id=work_order_id,
        incident_id=incident_id,
        opened_at=now,
        times=times,
        crew=crew,
    )
    rows.audit += opening.opening_audit_rows(
        jurisdiction_id=category.jurisdiction_id,
        incident_id=incident_id,
        work_order_id=work_order_id,
        department=terms.group_code,
        crew=crew,
        opened_by=opened_by,
    )
    return _persistent(session, Incident(**rows.incident))


def _write(session: Session, rows: _Rows) -> None:
    """Write every row in one statement (data-modifying CTEs: PostgreSQL checks the foreign
    keys at the statement's end, so the order within does not matter), then queue the
    delivery of the notices it owed."""
    # What the ORM still holds (a reopened incident's transition) goes first.
    session.flush()
    tables: list[tuple[type[Any], list[dict[str, Any]]]] = [
        (model, values)
        for model, values in (
            (Incident, [rows.incident] if rows.incident else []),
            (WorkOrder, [rows.work_order] if rows.work_order else []),
            (Requester, [rows.requester] if rows.requester else []),
            (Report, [rows.report] if rows.report else []),
            (Subscription, [rows.subscription] if rows.subscription else []),
            (Photo, [rows.photo] if rows.photo else []),
            (AuditEvent, rows.audit),
            (AnalyticsChange, _changes_of(rows.audit)),
            (Notice, [_notice_values(d) for d in rows.notices]),
        )
        if values
    ]
    shape = tuple((model, tuple(sorted(values[0]))) for model, values in tables)
    statement = _WRITES.get(shape)
    if statement is None:
        statement = _WRITES[shape] = _write_statement(shape)
    params = {
        f"rows_{model.__tablename__}": [_json_row(r) for r in values] for model, values in tables
    }
    # On the session's connection: a Core statement (tables, not models) needs none of the
    # ORM's per-execution work.
    notice_ids = [int(i) for i in session.connection().execute(statement, params).scalars()]
    if rows.notices and notice_ids:
        jid = rows.notices[0].jurisdiction_id
        outbox.defer(session.connection(), jurisdiction_id=jid, notice_ids=notice_ids)


def _changes_of(audit_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The planner's summaries' change list for what this write audits (as ``audit.record``
    notes it for the ORM writers): one row per tracked entity."""
    seen = {
        (a["jurisdiction_id"], a["entity"], a["entity_id"])
        for a in audit_rows
        if a["entity"] in changes.TRACKED
    }
    return [{"jurisdiction_id": j, "entity": e, "entity_id": i} for j, e, i in sorted(seen)]


# The write statement of each shape (which tables, which columns): a handful in all. Built
# once, so neither the statement nor its cache key is made again per report.
_WRITES: dict[tuple[tuple[type[Any], tuple[str, ...]], ...], Select[Any]] = {}


def _write_statement(shape: tuple[tuple[type[Any], tuple[str, ...]], ...]) -> Select[Any]:
    """Return the one statement writing rows of this shape, each table's rows taken as one
    JSON parameter ``rows_<table>``; it returns the ids of the notices newly owed. Core, on
    the models' tables."""
    ctes: list[CTE] = []
    owed: CTE | None = None
    for model, columns in shape:
        if model is Notice:
            owed = (
                _insert_rows(pg_insert(_table(Notice)), Notice, columns)
                .on_conflict_do_nothing(index_elements=["jurisdiction_id", "idempotency_key"])
                .returning(_table(Notice).c.id)
                .cte("owed")
            )
        else:
            ctes.append(
                _insert_rows(insert(model.__table__), model, columns).cte(f"new_{len(ctes)}")
            )
    if owed is not None:
        return select(owed.c.id).add_cte(*ctes)
    return select(literal(1)).where(literal(False)).add_cte(*ctes)


_Insert = TypeVar("_Insert", Insert, PgInsert)


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _insert_rows(statement: _Insert, model: type[Any], columns: Sequence[str]) -> _Insert:
    """Return ``statement`` (an INSERT into ``model``'s table) taking its rows as one JSON
    parameter, ``rows_<table>``, unpacked by the server into the table's row type.

    Not a multi-row VALUES: SQLAlchemy compiles one of those afresh every time (it caches
    no statement holding one), which cost more than the round trips saved."""
    table = model.__table__
    source = func.jsonb_populate_recordset(
        literal_column(f"NULL::{table.name}"), bindparam(f"rows_{table.name}", type_=JSONB)
    ).table_valued(*columns)
    return statement.from_select(columns, select(*(source.c[c] for c in columns)))


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    # The server reads each value as its column's type would from text: geometries as EWKT,
    # times as ISO 8601.
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, WKTElement):
            value = f"SRID={value.srid};{value.data}"
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value
    return out


def _notice_values(draft: NoticeDraft) -> dict[str, Any]:
    return {
        "jurisdiction_id": draft.jurisdiction_id,
        "idempotency_key": draft.idempotency_key,
        "kind": draft.kind,
        "channel": draft.channel,
        "recipient": draft.recipient,
        "language": draft.language,
        "incident_id": draft.incident_id,
        "requester_id": draft.requester_id,
        "webhook_endpoint_id": draft.webhook_endpoint_id,
        "context": dict(draft.context),
    }


_Stored = TypeVar("_Stored", Report, Incident)


def _persistent(session: Session, row: _Stored) -> _Stored:
    """Return ``row`` (written already, in Core) as the session's own persistent object, with
    no statement: the columns it was built with are loaded, the server's defaults load when
    first read."""
    make_transient_to_detached(row)
    session.add(row)
    return row


def store_report_photo(
    session: Session,
    *,
    report: Report,
    processed: ProcessedPhoto,
    media: MediaStore,
    jurisdiction_slug: str,
    now: datetime,
) -> Photo:
    """Return a processed photo stored as one more photo of ``report`` (a report may carry
    several); its files are written now and deleted again if the transaction rolls back."""
    return media_service.store_photo(
        session,
        media,
        processed,
        jurisdiction_id=report.jurisdiction_id,
        jurisdiction_slug=jurisdiction_slug,
        kind="report",
        report_id=report.id,
        now=now,
    )


_VIEW_SQL = text(
    """
    SELECT r.tracking_id, i.status, r.category_code, r.description,
           w.code AS ward_code, w.name AS ward_name,
           a.id AS asset_id, a.asset_type, a.external_id AS asset_external_id,
           a.name AS asset_name,
           ST_Distance(a.geom::geography, r.geom::geography) AS asset_distance_m,
           ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, r.location_source,
           p.public_key, p.thumb_key, r.reported_at, i.updated_at,
           r.incident_id, r.channel, q.email, q.phone, q.language,
           -- The city as a constant in the subqueries: Citus routes them to one shard only
           -- by their own filter on jurisdiction_id.
           (SELECT count(*) FROM reports AS rc
            WHERE rc.jurisdiction_id = :jurisdiction_id AND rc.incident_id = r.incident_id)
               AS report_count
    FROM reports r
    JOIN incidents i ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id
    LEFT JOIN wards w ON w.jurisdiction_id = r.jurisdiction_id AND w.id = r.ward_id
    LEFT JOIN assets a ON a.jurisdiction_id = r.jurisdiction_id AND a.id = r.asset_id
    LEFT JOIN requesters q ON q.jurisdiction_id = r.jurisdiction_id AND q.id = r.requester_id
    LEFT JOIN LATERAL (
        SELECT public_key, thumb_key FROM photos ph
        WHERE ph.jurisdiction_id = :jurisdiction_id AND ph.report_id = r.id
          AND ph.kind = 'report'
        ORDER BY ph.id LIMIT 1
    ) p ON true
    WHERE r.jurisdiction_id = :jurisdiction_id AND r.tracking_id = :tracking_id
    """
)


def shown_view(report: Report, shown: Shown, *, media_url: str) -> ReportOut:
    """Return the public view of a report just stored, from what was written (the same as
    :func:`report_view` reads back)."""
    base = media_url.rstrip("/")
    asset = shown.asset
    return ReportOut(
        tracking_id=report.tracking_id,
        status=shown.status,
        category=report.category_code,
        description=report.description,
        ward=WardOut(code=shown.ward.code, name=shown.ward.name),
        asset=None
        if asset is None
        else AssetOut(
            id=asset.id,
            type=asset.asset_type,
            external_id=asset.external_id,
            name=asset.name,
            distance_m=round(asset.distance_m, 1),
        ),
        location=PointGeoJSON(coordinates=(shown.lon, shown.lat)),
        location_source=report.location_source,
        photo_url=None if shown.photo_keys is None else f"{base}/{shown.photo_keys[0]}",
        thumbnail_url=None if shown.photo_keys is None else f"{base}/{shown.photo_keys[1]}",
        reported_at=report.reported_at,
        updated_at=shown.updated_at,
        report_count=shown.report_count,
    )


def report_view(
    session: Session,
    *,
    jurisdiction_id: int,
    tracking_id: str,
    media_url: str,
    staff: bool = False,
) -> ReportOut:
    """Return the public view of a report (or the staff view, with contact details).

    ``media_url`` is the URL prefix that public media keys are served under.
    """
    row = session.execute(
        _VIEW_SQL, {"jurisdiction_id": jurisdiction_id, "tracking_id": tracking_id.upper()}
    ).one_or_none()
    if row is None:
        raise NotFound(f"No report has the tracking id {tracking_id!r}.")
    base = media_url.rstrip("/")
    common = {
        "tracking_id": row.tracking_id,
        "status": row.status,
        "category": row.category_code,
        "description": row.description,
        "ward": WardOut(code=row.ward_code, name=row.ward_name) if row.ward_code else None,
        "asset": AssetOut(
            id=row.asset_id,
            type=row.asset_type,
            external_id=row.asset_external_id,
            name=row.asset_name,
            distance_m=round(row.asset_distance_m, 1),
        )
        if row.asset_id is not None
        else None,
        "location": PointGeoJSON(coordinates=(row.lon, row.lat)),
        "location_source": row.location_source,
        "photo_url": f"{base}/{row.public_key}" if row.public_key else None,
        "thumbnail_url": f"{base}/{row.thumb_key}" if row.thumb_key else None,
        "reported_at": row.reported_at,
        "updated_at": row.updated_at,
        "report_count": row.report_count,
    }
    if not staff:
        return ReportOut(**common)
    contact = (
        ContactOut(email=row.email, phone=row.phone, language=row.language)
        if row.email or row.phone
        else None
    )
    return StaffReportOut(
        **common, incident_id=row.incident_id, channel=row.channel, contact=contact
    )


# --- the public map ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicIncident:
    """An incident as anyone may see it on the public map: no requester, no contact, no photo
    key; the text is its first report's description (shown escaped by the page)."""

    tracking_id: str
    category_code: str
    status: str
    fixed: bool
    lon: float
    lat: float
    description: str
    report_count: int
    opened_at: datetime
    closed_at: datetime | None


_FIXED_STATUSES = ("completed", "closed")

_PUBLIC_INCIDENTS = text(
    """
    SELECT first.tracking_id, i.category_code, i.status, i.opened_at, i.closed_at,
           ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, first.description, n.report_count
    FROM incidents AS i
    JOIN LATERAL (
        SELECT r.tracking_id, r.description FROM reports AS r
        WHERE r.jurisdiction_id = i.jurisdiction_id AND r.incident_id = i.id
        ORDER BY r.reported_at, r.id LIMIT 1
    ) AS first ON true
    JOIN LATERAL (
        SELECT count(*) AS report_count FROM reports AS r
        WHERE r.jurisdiction_id = i.jurisdiction_id AND r.incident_id = i.id
    ) AS n ON true
    WHERE i.jurisdiction_id = CAST(:jid AS smallint)
      AND (i.status = ANY(:open_statuses)
           OR (i.status = ANY(:fixed_statuses) AND i.closed_at >= :fixed_since))
    ORDER BY i.opened_at DESC, i.id DESC
    LIMIT :limit
    """
)


def public_incidents(
    session: Session, *, jurisdiction_id: int, fixed_since: datetime, limit: int
) -> list[PublicIncident]:
    """Return the open incidents and those fixed (completed or closed) since ``fixed_since``,
    newest first, at most ``limit``. Cancelled and transferred ones are left out."""
    rows = session.execute(
        _PUBLIC_INCIDENTS,
        {
            "jid": jurisdiction_id,
            "open_statuses": sorted(lifecycle.OPEN),
            "fixed_statuses": list(_FIXED_STATUSES),
            "fixed_since": fixed_since,
            "limit": limit,
        },
    ).all()
    return [
        PublicIncident(
            tracking_id=r.tracking_id,
            category_code=r.category_code,
            status=r.status,
            fixed=r.status in _FIXED_STATUSES,
            lon=float(r.lon),
            lat=float(r.lat),
            description=r.description,
            report_count=int(r.report_count),
            opened_at=r.opened_at,
            closed_at=r.closed_at,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class FirstReport:
    """An incident's first report as staff lists show it, and how many reports it has."""

    tracking_id: str
    description: str
    address: str | None
    report_count: int


_FIRST_REPORTS = text(
    """
    SELECT DISTINCT ON (r.incident_id) r.incident_id, r.tracking_id, r.description, r.address,
           count(*) OVER (PARTITION BY r.incident_id) AS report_count
    FROM reports AS r
    WHERE r.jurisdiction_id = :jid AND r.incident_id = ANY(:ids)
    ORDER BY r.incident_id, r.reported_at, r.id
    """
)


def first_reports(
    session: Session, *, jurisdiction_id: int, incident_ids: list[int]
) -> dict[int, FirstReport]:
    """Return {incident id: its first report (tracking id, text, address) and report count}
    for those of ``incident_ids`` that have reports; the text is the resident's, unescaped."""
    if not incident_ids:
        return {}
    rows = session.execute(_FIRST_REPORTS, {"jid": jurisdiction_id, "ids": incident_ids})
    return {
        int(r.incident_id): FirstReport(
            tracking_id=r.tracking_id,
            description=r.description,
            address=r.address,
            report_count=int(r.report_count),
        )
        for r in rows
    }
