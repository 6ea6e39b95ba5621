"""The crew's page (/crew): the crew's day on a tablet — the route on the map, the stops as a
list, and the actions (start, complete with an after-photo, can't do, hold) — working on
through a bad connection.

The page's module crew.js reads one JSON document, ``GET /api/v1/crew/{day}``: the day plan's
route for the crew (``dispatch.dayplans.views``, the same plan ``/api/v1/plans/{day}/crews/
{code}`` serves) with what the crew needs at each stop that the plan does not carry (ward,
asset, access hours, appointment, SLA state, the residents' words and public photos, the
work order's version for If-Match). Its ETag lets the page's fallback poll cost a 304.
Actions go to the work-order API itself (``/api/v1/work-orders/{id}/…``), with an
Idempotency-Key each, so a tablet sending its offline queue again changes nothing twice.

An action refused after the tablet was offline (the job went to another crew meanwhile) loses
nothing: the page sends the crew's photo and note to ``POST /api/v1/crew/kept``, which keeps
them as a staff-only audit event on the work order; dispatchers read them at
``GET /api/v1/crew/kept``.

The service worker (crew-sw.js) is served at ``/crew-sw.js`` so that its scope may cover
``/crew``: a worker's scope cannot reach above the folder of its script.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import folium
from geoalchemy2.shape import to_shape
from pydantic import BaseModel
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from dispatch import service as dispatch_service
from dispatch.dayplans import commands as plan_commands
from dispatch.dayplans import views as plan_views
from dispatch.models import CategoryServiceTime, Crew, WorkOrderTerms
from geo311.kernel.auth.service import Principal, require_crew_of
from geo311.kernel.errors import NotFound
from geo311.kernel.media.models import Photo
from geo311.resident.intake.models import Report
from layers.models import Asset, Ward
from maps import folium_assets, i18n, shell
from maps.assets import own_assets, own_url
from work_orders import audit, queries
from work_orders.models import RESOLUTION_CODES, AuditEvent, Incident, ServiceCategory, WorkOrder

# Who may open the page: crews (their own crew's day); dispatchers and admins (any crew's,
# ?crew=CODE) to see what a crew sees.
ROLES = ("crew", "dispatcher", "admin")
KEPT_ACTION = "crew_kept"
MAX_NOTE_CHARS = 2000


# --- the JSON the page reads -----------------------------------------------------------------


class CrewStopOut(BaseModel):
    seq: int
    work_order_id: int
    incident_id: int
    version: int
    status: str
    category: str
    category_name: str
    ward: str | None
    ward_name: str | None
    asset_id: str | None
    lon: float
    lat: float
    eta: datetime
    start: datetime
    end: datetime
    window_start: datetime | None
    window_end: datetime | None
    access_start: time | None
    access_end: time | None
    due_at: datetime
    at_risk_at: datetime
    sla_state: str
    hold_reason: str | None
    descriptions: list[str]
    photos: list[str]


class CrewDayOut(BaseModel):
    day: date
    crew: str
    crew_id: int
    crew_name: str
    timezone: str
    plan_version: int | None
    depot: tuple[float, float]
    depot_name: str
    depart: datetime | None
    back: datetime | None
    breaks: list[tuple[datetime, datetime]]
    line: list[tuple[float, float]] | None
    stops: list[CrewStopOut]


class KeptOut(BaseModel):
    work_order_id: int
    action: str
    crew: str | None
    by: str
    note: str
    refusal: str
    photo_url: str | None
    at: datetime


def crew_of_request(
    session: Session, principal: Principal, *, jurisdiction_id: int, code: str | None
) -> Crew:
    """Return the crew whose day is asked for: a crew user's own (another's is 403)."""
    if code is None:
        code = dispatch_service.crew_code_of(
            session, jurisdiction_id=jurisdiction_id, crew_id=principal.crew_id
        )
        if code is None:
            raise NotFound(
                f"Staff user {principal.name!r} belongs to no crew: name one with ?crew=CODE."
                if principal.role != "crew"
                else f"Staff user {principal.name!r} belongs to no crew."
            )
    crew = session.scalar(
        select(Crew).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == code)
    )
    if crew is None:
        raise NotFound(f"No crew {code!r}.")
    require_crew_of(principal, crew.id, what=f"The route of crew {code!r}")
    return crew


def crew_day(session: Session, *, jurisdiction_id: int, crew: Crew, day: date) -> CrewDayOut:
    """Return the crew's day: its route on the day's plan with every stop's details (no plan
    yet: the depot and no stops)."""
    zone = dispatch_service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    depot = to_shape(crew.depot)
    try:
        view: plan_views.PlanView | None = plan_views.plan_view(
            session, jurisdiction_id=jurisdiction_id, day=day, crew_code=crew.code
        )
    except NotFound:
        view = None
    route = view.routes[0] if view is not None and view.routes else None
    stops = _stops(session, jurisdiction_id, route.stops if route else [])
    return CrewDayOut(
        day=day,
        crew=crew.code,
        crew_id=crew.id,
        crew_name=crew.name,
        timezone=str(zone),
        plan_version=view.version if view is not None else None,
        depot=(float(depot.x), float(depot.y)),
        depot_name=crew.depot_name,
        depart=route.depart if route else None,
        back=route.back if route else None,
        breaks=list(route.breaks) if route else [],
        line=route.line if route else None,
        stops=stops,
    )


def _stops(
    session: Session, jurisdiction_id: int, planned: list[plan_views.StopView]
) -> list[CrewStopOut]:
    if not planned:
        return []
    ids = [s.work_order_id for s in planned]
    rows = {
        r.work_order.id: r
        for r in queries.list_work_orders(
            session, jurisdiction_id=jurisdiction_id, work_order_ids=ids, limit=len(ids)
        )
    }
    incident_ids = [s.incident_id for s in planned]
    incidents = {
        i.id: i
        for i in session.scalars(
            select(Incident).where(
                Incident.jurisdiction_id == jurisdiction_id, Incident.id.in_(incident_ids)
            )
        )
    }
    wards = {
        w.id: w
        for w in session.scalars(
            select(Ward).where(
                Ward.jurisdiction_id == jurisdiction_id,
                Ward.id.in_([i.ward_id for i in incidents.values() if i.ward_id is not None]),
            )
        )
    }
    assets = {
        a.id: a
        for a in session.scalars(
            select(Asset).where(
                Asset.jurisdiction_id == jurisdiction_id,
                Asset.id.in_([i.asset_id for i in incidents.values() if i.asset_id is not None]),
            )
        )
    }
    categories = {
        c.code: c
        for c in session.scalars(
            select(ServiceCategory).where(ServiceCategory.jurisdiction_id == jurisdiction_id)
        )
    }
    access = {
        t.category_code: t
        for t in session.scalars(
            select(CategoryServiceTime).where(
                CategoryServiceTime.jurisdiction_id == jurisdiction_id
            )
        )
    }
    terms = {
        t.work_order_id: t
        for t in session.scalars(
            select(WorkOrderTerms).where(
                WorkOrderTerms.jurisdiction_id == jurisdiction_id,
                WorkOrderTerms.work_order_id.in_(ids),
            )
        )
    }
    words: dict[int, list[str]] = {}
    photos: dict[int, list[str]] = {}
    for report, thumb in session.execute(
        select(Report, Photo.public_key)
        .outerjoin(
            Photo,
            and_(
                Photo.jurisdiction_id == Report.jurisdiction_id,
                Photo.report_id == Report.id,
                Photo.kind == "report",
            ),
        )
        .where(Report.jurisdiction_id == jurisdiction_id, Report.incident_id.in_(incident_ids))
        .order_by(Report.reported_at, Report.id)
    ).all():
        said = words.setdefault(report.incident_id, [])
        if report.description.strip() and report.description not in said:
            said.append(report.description)
        if thumb is not None:
            photos.setdefault(report.incident_id, []).append(f"/media/{thumb}")
    out = []
    for s in planned:
        row = rows.get(s.work_order_id)
        incident = incidents.get(s.incident_id)
        if row is None or incident is None:
            continue
        work_order = row.work_order
        ward = wards.get(incident.ward_id) if incident.ward_id is not None else None
        asset = assets.get(incident.asset_id) if incident.asset_id is not None else None
        category = categories.get(s.category_code)
        hours = access.get(s.category_code)
        term = terms.get(s.work_order_id)
        out.append(
            CrewStopOut(
                seq=s.seq,
                work_order_id=s.work_order_id,
                incident_id=s.incident_id,
                version=work_order.version,
                status=work_order.status,
                category=s.category_code,
                category_name=category.name if category else s.category_code,
                ward=ward.code if ward else None,
                ward_name=ward.name if ward else None,
                asset_id=asset.external_id if asset else None,
                lon=s.lon,
                lat=s.lat,
                eta=s.arrival,
                start=s.start,
                end=s.end,
                window_start=term.window_start if term else None,
                window_end=term.window_end if term else None,
                access_start=hours.access_start if hours else None,
                access_end=hours.access_end if hours else None,
                due_at=s.due_at,
                at_risk_at=work_order.at_risk_at,
                sla_state=row.sla_state,
                hold_reason=work_order.hold_reason,
                descriptions=words.get(s.incident_id, []),
                photos=photos.get(s.incident_id, [])[:4],
            )
        )
    return out


# --- the page ---------------------------------------------------------------------------------

# The words crew.js puts on the page.
_SCRIPT_KEYS = (
    "crew.loading",
    "crew.failed",
    "crew.no_plan",
    "crew.no_stops",
    "crew.eta",
    "crew.window",
    "crew.appointment",
    "crew.access",
    "crew.due",
    "crew.at_risk",
    "crew.breached",
    "crew.on_track",
    "crew.ward",
    "crew.asset",
    "crew.said",
    "crew.navigate",
    "crew.coordinates",
    "crew.start",
    "crew.complete",
    "crew.cant_do",
    "crew.hold",
    "crew.done",
    "crew.status",
    "crew.depot",
    "crew.break",
    "crew.added",
    "crew.removed",
    "crew.changed",
    "crew.offline",
    "crew.online",
    "crew.queued",
    "crew.sent",
    "crew.refused",
    "crew.kept",
    "crew.stop",
    "crew.to_do",
    "crew.finished",
    "crew.photo_needed",
    "crew.reason_needed",
    "crew.updated",
    "zoom.in",
    "zoom.out",
    *(f"crewstatus.{s}" for s in ("new", "triaged", "assigned", "scheduled", "in_progress")),
    *(f"crewstatus.{s}" for s in ("completed", "closed", "cancelled", "on_hold", "reopened")),
    "crewstatus.transferred",
)


def may_open(role: str) -> bool:
    """Return whether a signed-in user with ``role`` may open the crew's page."""
    return role in ROLES


def render_page(
    context: shell.PageContext,
    *,
    day: date,
    crew: str | None,
    extent: tuple[float, float, float, float] | None,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
    nonce: str,
) -> str:
    """Return the /crew page's HTML: an empty folium map the module fills, the list, the forms."""
    west, south, east, north = extent or (-0.1, -0.1, 0.1, 0.1)
    fmap = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        zoom_start=13,
        tiles=None,
        control_scale=True,
        maxZoom=tile_max_zoom,
    )
    tiles = None
    if tile_url:
        tiles = folium.TileLayer(
            tiles=tile_url, attr=tile_attribution or "tiles", max_zoom=tile_max_zoom, name="tiles"
        )
        tiles.add_to(fmap)
    fmap.fit_bounds([[south, west], [north, east]])
    rendered = folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce=nonce)
    words = i18n.messages(context.language)
    module = f'<script type="module" src="{own_url("crew.js")}"></script>'
    return shell.render(
        "crew.html",
        context,
        title=words["page.crew"],
        head=shell.Markup(
            rendered.head + f'\n<link rel="stylesheet" href="{own_url("crew.css")}">'
        ),
        scripts=shell.Markup(rendered.script + "\n" + module),
        map_html=shell.Markup(rendered.body),
        map_name=fmap.get_name(),
        tiles_name=tiles.get_name() if tiles is not None else "",
        day=day.isoformat(),
        crew=crew or "",
        resolutions=[(c, words[f"resolution.{c}"]) for c in RESOLUTION_CODES],
        reasons=[(c, words[f"cant_do.{c}"]) for c in plan_commands.CANT_DO_REASONS],
        words_json=json.dumps({k: words[k] for k in _SCRIPT_KEYS}),
        # The live channel's module, when this server has it (else the page polls).
        live_url=own_url("live.js") if "live.js" in own_assets() else "",
    )


def render_forbidden(context: shell.PageContext) -> str:
    """Return the page for a signed-in user whose role has no crew's day to see."""
    words = i18n.messages(context.language)
    return shell.render("crew_forbidden.html", context, title=words["crew.forbidden_title"])


def today_in(zone_name: str) -> date:
    """Return today's date in the city's time zone."""
    return datetime.now(ZoneInfo(zone_name)).date()


def etag_of(body: bytes) -> str:
    """Return a strong ETag of a response body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def keep_leftover(
    session: Session,
    *,
    work_order: WorkOrder,
    action: str,
    note: str,
    refusal: str,
    photo_id: int | None,
    crew_code: str | None,
    actor: str,
) -> None:
    """Keep what a crew meant to send about a job it could no longer act on (a staff-only
    audit event on the work order, read back by :func:`list_kept`). Flushes."""
    audit.record(
        session,
        jurisdiction_id=work_order.jurisdiction_id,
        entity="work_order",
        entity_id=work_order.id,
        action=KEPT_ACTION,
        actor=actor,
        reason=note or None,
        data={
            "action": action,
            "refusal": refusal,
            "photo_id": photo_id,
            "crew": crew_code,
            "note": note,
        },
    )
    session.flush()


def list_kept(session: Session, *, jurisdiction_id: int, limit: int = 100) -> list[KeptOut]:
    """Return the crews' kept photos and notes, newest first."""
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.jurisdiction_id == jurisdiction_id, AuditEvent.action == KEPT_ACTION)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    ).all()
    photo_ids = [int(e.data["photo_id"]) for e in events if e.data.get("photo_id") is not None]
    keys = {
        int(photo_id): str(key)
        for photo_id, key in session.execute(
            select(Photo.id, Photo.public_key).where(
                Photo.jurisdiction_id == jurisdiction_id, Photo.id.in_(photo_ids)
            )
        )
    }
    return [
        KeptOut(
            work_order_id=e.entity_id,
            action=str(e.data.get("action", "")),
            crew=e.data.get("crew"),
            by=e.actor,
            note=str(e.data.get("note", "")),
            refusal=str(e.data.get("refusal", "")),
            photo_url=(
                f"/media/{keys[int(e.data['photo_id'])]}"
                if e.data.get("photo_id") is not None and int(e.data["photo_id"]) in keys
                else None
            ),
            at=e.at,
        )
        for e in events
    ]
