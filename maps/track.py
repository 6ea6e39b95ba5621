"""The public tracking page of one report (/track/{tracking_id}): where it is, its category and
public photo, how many residents reported it, and the timeline of its incident.

The timeline is the incident's PUBLIC audit trail only, read with Open311's own query
(``geo311.resident.open311.service.public_events``), from the moment this report arrived, as Open311
tells that request: status changes and public notes, never a staff ``reason``. A note chosen
from the public wordings is worded again in the page's language; a resident's own words are
shown as they are (the template escapes them). No personal data: no requester, no contact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import folium
from babel.dates import format_date, format_datetime
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.models import DayPlan, PlanStop
from geo311.kernel.media.models import Photo
from geo311.resident.intake import service as intake_service
from geo311.resident.intake.models import Report
from geo311.resident.intake.schemas import ReportOut
from geo311.resident.open311 import service as open311_service
from geo311.resident.open311.status import open311_status
from maps import folium_assets, i18n, shell
from maps.assets import own_url
from maps.public_map import build_map
from work_orders import categories as category_service
from work_orders.models import AuditEvent, Incident, WorkOrder
from work_orders.public_notes import PublicNote

# Where the page's photos are served: the app's own media route, on the page's own origin.
MEDIA_PATH = "/media"
# Closing statuses whose entry shows the crew's after-photo.
_FIXED = ("completed", "closed")
# Public wordings that send the resident to another request.
_FOLLOW_OTHER = ("merged", "merged_back")
_SCRIPT_WORDS = ("map.tiles_failed", "zoom.in", "zoom.out")


@dataclass(frozen=True)
class TimelineEntry:
    """One public step of the incident, in the page's language."""

    at: datetime
    # The incident status it moved to; "new" for the report's arrival; None for a comment.
    status: str | None
    title: str
    note: str | None
    # A request to follow instead (a merge): its tracking id.
    follow: str | None = None
    after_photo_url: str | None = None
    # The day the work is planned for (on the latest "scheduled" step), from the day plans.
    day: date | None = None


@dataclass(frozen=True)
class Tracking:
    """What the tracking page shows."""

    report: ReportOut
    category_name: str
    # The incident's status, and Open311's open/closed for it (the same function Open311 uses).
    status: str
    open311_status: str
    timeline: list[TimelineEntry]


def _note(event: AuditEvent, language: str) -> str | None:
    public = event.data.get("public") if isinstance(event.data, dict) else None
    if isinstance(public, dict) and "key" in public:
        values = {k: str(v) for k, v in public.items() if k != "key"}
        try:
            return PublicNote(str(public["key"]), values).text(language)
        except ValueError:
            pass  # a wording since retired: its stored English text below
    return (event.public_note or "").strip() or None


def _after_photos(session: Session, jurisdiction_id: int, incident_id: int) -> list[Photo]:
    """Return the after-photos of the incident's completed work orders, oldest first."""
    return list(
        session.scalars(
            select(Photo)
            .join(
                WorkOrder,
                (WorkOrder.jurisdiction_id == Photo.jurisdiction_id)
                & (WorkOrder.after_photo_id == Photo.id),
            )
            .where(
                WorkOrder.jurisdiction_id == jurisdiction_id,
                WorkOrder.incident_id == incident_id,
                Photo.kind == "after",
            )
            .order_by(Photo.created_at, Photo.id)
        )
    )


def _planned_day(session: Session, jurisdiction_id: int, incident_id: int) -> date | None:
    """Return the day of the plan the incident's work is on (a work order is on one plan at
    most); only the day is public, not the crew or the time."""
    return session.scalar(
        select(DayPlan.day)
        .join(
            PlanStop,
            (PlanStop.jurisdiction_id == DayPlan.jurisdiction_id)
            & (PlanStop.plan_id == DayPlan.id),
        )
        .join(
            WorkOrder,
            (WorkOrder.jurisdiction_id == PlanStop.jurisdiction_id)
            & (WorkOrder.id == PlanStop.work_order_id),
        )
        .where(DayPlan.jurisdiction_id == jurisdiction_id, WorkOrder.incident_id == incident_id)
        .order_by(DayPlan.day.desc())
        .limit(1)
    )


def timeline(
    session: Session, *, report: Report, language: str, media_url: str = MEDIA_PATH
) -> list[TimelineEntry]:
    """Return the report's timeline, oldest first: its arrival, then every public event of
    its incident since then (status changes with their public words, public notes)."""
    words = i18n.messages(language)
    events = open311_service.public_events(
        session, report.jurisdiction_id, {report.incident_id}
    ).get(report.incident_id, [])
    photos = _after_photos(session, report.jurisdiction_id, report.incident_id)
    base = media_url.rstrip("/")
    entries = [
        TimelineEntry(at=report.reported_at, status="new", title=words["track.received"], note=None)
    ]
    for event in events:
        if event.at < report.created_at or event.action == "opened":
            continue  # before this report arrived (as Open311 tells it), or its arrival
        note = _note(event, language)
        status = event.to_state
        public = event.data.get("public") if isinstance(event.data, dict) else None
        follow = (
            str(public.get("parent"))
            if isinstance(public, dict) and public.get("key") in _FOLLOW_OTHER
            else None
        )
        photo = None
        if status in _FIXED:
            # The crew's photo of this closure: the latest taken by the time it closed.
            done = [p for p in photos if p.created_at <= event.at]
            photo = f"{base}/{done[-1].public_key}" if done else None
        title = (
            words.get(f"status.{status}", status.replace("_", " ").capitalize())
            if status is not None
            else words["track.update"]
        )
        if note == title:
            note = None
        last = entries[-1]
        if title == last.title and note in (None, last.note) and follow is None:
            # "completed" then "closed" are one step for a resident: "Fixed", once.
            if photo is not None and last.after_photo_url is None:
                entries[-1] = replace(last, after_photo_url=photo)
            continue
        entries.append(
            TimelineEntry(
                at=event.at,
                status=status,
                title=title,
                note=note,
                follow=follow,
                after_photo_url=photo,
            )
        )
    scheduled = [i for i, e in enumerate(entries) if e.status == "scheduled"]
    if scheduled:
        day = _planned_day(session, report.jurisdiction_id, report.incident_id)
        entries[scheduled[-1]] = replace(entries[scheduled[-1]], day=day)
    return entries


def tracking(
    session: Session, *, jurisdiction_id: int, tracking_id: str, language: str
) -> Tracking | None:
    """Return what /track shows of the report ``tracking_id``, or None when there is none."""
    report = session.scalar(
        select(Report).where(
            Report.jurisdiction_id == jurisdiction_id,
            Report.tracking_id == tracking_id.strip().upper(),
        )
    )
    if report is None:
        return None
    view = intake_service.report_view(
        session,
        jurisdiction_id=jurisdiction_id,
        tracking_id=report.tracking_id,
        media_url=MEDIA_PATH,
    )
    incident = session.scalar(
        select(Incident).where(
            Incident.jurisdiction_id == jurisdiction_id, Incident.id == report.incident_id
        )
    )
    assert incident is not None  # a report always belongs to an incident
    category = category_service.get_category(
        session, jurisdiction_id=jurisdiction_id, code=report.category_code
    )
    return Tracking(
        report=view,
        category_name=category.name if category is not None else report.category_code,
        status=incident.status,
        open311_status=open311_status(incident.status),
        timeline=timeline(session, report=report, language=language),
    )


def render_page(
    context: shell.PageContext,
    found: Tracking,
    *,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
    timezone: str,
    nonce: str,
) -> str:
    """Return the /track page's HTML: the report's point on a folium map (no user text goes
    through folium), the facts and the timeline rendered by the escaping template."""
    lon, lat = found.report.location.coordinates
    pad = 0.003  # a few streets around the point
    fmap, _, tiles = build_map(
        extent=(lon - pad, lat - pad, lon + pad, lat + pad),
        tile_url=tile_url,
        tile_attribution=tile_attribution,
        tile_max_zoom=tile_max_zoom,
    )
    point = folium.CircleMarker(
        location=[lat, lon],
        radius=11,
        color="#ffffff",
        weight=3,
        fill=True,
        fill_color="#c2410c",
        fill_opacity=1,
    )
    point.add_to(fmap)
    rendered = folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce=nonce)
    words = i18n.messages(context.language)
    module = f'<script type="module" src="{own_url("track.js")}"></script>'
    return shell.render(
        "track.html",
        context,
        title=f"{words['track.title']} {found.report.tracking_id}",
        head=shell.Markup(rendered.head),
        scripts=shell.Markup(rendered.script + "\n" + module),
        map_html=shell.Markup(rendered.body),
        map_name=fmap.get_name(),
        tiles_name=tiles.get_name() if tiles is not None else "",
        point_name=point.get_name(),
        found=found,
        status_label=words.get(f"status.{found.status}", found.status),
        words_json=json.dumps({k: words[k] for k in _SCRIPT_WORDS}),
        follow_words_json=json.dumps({k: words[k] for k in ("follow.sent", "follow.failed")}),
        date=_date_formatter(context.language, timezone),
        day=lambda d: format_date(d, "full", locale=context.language),
    )


def render_not_found(context: shell.PageContext, tracking_id: str) -> str:
    """Return the page for a tracking number that matches no report."""
    words = i18n.messages(context.language)
    return shell.render(
        "track_missing.html", context, title=words["track.missing_title"], tracking_id=tracking_id
    )


def _date_formatter(language: str, timezone: str) -> Callable[[datetime], str]:
    zone = ZoneInfo(timezone)

    def fmt(at: datetime) -> str:
        return str(format_datetime(at, "medium", tzinfo=zone, locale=language))

    return fmt
