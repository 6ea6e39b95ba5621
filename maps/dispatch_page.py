"""The dispatcher's page (/dispatch): all the open work on a map, coloured by crew, the day's
routes with numbered stops, the queue, a side panel per crew; select jobs with the mouse and
give them to a crew after a what-if preview.

The page loads in one request, ``GET /api/v1/dispatch/board``: the open work (with the first
report's text and address, its ward, its crew, its queue reason and its SLA state, and its
predicted arrival when a route has it), the crews with their colours, load and free time, and
the day's plan. Everything the page then does goes through the existing JSON API (moves and
their preview, locks, appointments, holds, merges and splits), with the session's CSRF token.
Text from residents reaches the page through textContent only.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, date, datetime

from folium.plugins import MarkerCluster
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from dispatch import assignment
from dispatch import service as dispatch_service
from dispatch.dayplans import appointments
from dispatch.dayplans import views as plan_views
from dispatch.errors import NoPlan
from geo311.resident.intake import service as intake_service
from layers import service as layers_service
from maps import folium_assets, i18n, public_map, shell
from maps.assets import own_assets, own_url
from work_orders import categories as category_service
from work_orders import queries

# Who may open the page and read its board: dispatchers (admins are always let in).
ROLES = ("dispatcher",)

# Crew colours, told apart by people with the common colour-vision deficiencies (Okabe-Ito,
# then Tol's muted set); past the list they repeat, and the legend names every crew.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#882255",
    "#117733",
    "#332288",
    "#AA4499",
    "#44AA99",
    "#999933",
)

# Markers within this many pixels of a bubble merge into it. dispatch.js draws no bubble wider
# than this, so over a whole city's backlog the bubbles sit side by side instead of on top of
# one another (at 28 px with 44 px bubbles, rings hid each other's crew colours).
CLUSTER_RADIUS_PX = 40

_OPEN = ("new", "triaged", "assigned", "scheduled", "in_progress", "on_hold", "reopened")

# The words dispatch.js puts on the page.
_SCRIPT_WORDS = (
    "dispatch.loading",
    "dispatch.queue_layer",
    "dispatch.shown",
    "dispatch.failed",
    "dispatch.no_plan",
    "dispatch.selected",
    "dispatch.none_selected",
    "dispatch.preview_title",
    "dispatch.preview_running",
    "dispatch.caused",
    "dispatch.avoided",
    "dispatch.no_breach",
    "dispatch.left_out",
    "dispatch.moved",
    "dispatch.conflict",
    "dispatch.refused",
    "dispatch.queue_crew",
    "dispatch.stops",
    "dispatch.load",
    "dispatch.free",
    "dispatch.eta",
    "dispatch.due",
    "dispatch.reason",
    "dispatch.lock",
    "dispatch.unlock",
    "dispatch.hold",
    "dispatch.resume",
    "dispatch.hold_reason",
    "dispatch.appointment",
    "dispatch.appointment_set",
    "dispatch.appointment_clear",
    "dispatch.reports",
    "dispatch.merge",
    "dispatch.merge_into",
    "dispatch.split",
    "dispatch.undo",
    "dispatch.done",
    "dispatch.live",
    "dispatch.updated",
    "dispatch.before",
    "dispatch.replan_crew",
    "dispatch.ward",
    "dispatch.after",
    "dispatch.appointment_from",
    "dispatch.appointment_to",
    "dispatch.appointment_missing",
    "dispatch.cant_do",
    "dispatch.kept",
    "dispatch.kept_start",
    "dispatch.kept_complete",
    "dispatch.kept_cant_do",
    "dispatch.kept_hold",
    "dispatch.kept_refused",
    "dispatch.kept_photo",
    "sla.breached",
    "sla.at_risk",
    "sla.late",
    "sla.on_track",
    "zoom.in",
    "zoom.out",
    "map.tiles_failed",
    # The statuses in the words the filter and the popups show.
    *(f"status.{status}" for status in _OPEN),
)


def may_open(role: str) -> bool:
    """Return whether a signed-in user with ``role`` may open the dispatcher's page."""
    return role in ROLES or role == "admin"


# --- the board: what the page loads ------------------------------------------------------------


class BoardJob(BaseModel):
    id: int
    incident_id: int
    tracking_id: str | None = Field(description="The first report's tracking number")
    category: str
    category_name: str
    status: str
    crew: str | None = Field(description="The crew's code; null: no crew (the queue)")
    ward: str | None
    lon: float
    lat: float
    due_at: datetime
    sla: str = Field(description="breached, at_risk or on_track (by the clock, now)")
    late: bool = Field(description="The planned arrival falls after the due time")
    eta: datetime | None = Field(description="Planned arrival, when on a route of the day")
    seq: int | None
    locked: bool
    appointment: tuple[datetime, datetime] | None
    queued: str | None = Field(description="Why it waits in the queue (no crew)")
    queued_detail: str | None
    left_out: str | None = Field(description="Why the day's plan left it out")
    description: str
    address: str | None
    reports: int
    version: int = Field(description="The work order's version (for status changes)")


class BoardCrew(BaseModel):
    id: int = Field(description="The crew's id (live events name crews by id)")
    code: str
    name: str
    colour: str
    working: bool = Field(description="On shift on the day")
    shift_s: int
    busy_s: int = Field(description="From leaving the depot to coming back, on the plan")
    free_s: int
    service_s: int = Field(description="Time on site, summed over the route's stops")


class BoardRoute(BaseModel):
    crew: str
    line: list[tuple[float, float]] | None
    depart: datetime
    back: datetime
    stops: list[int] = Field(description="Work order ids in visiting order")


class Board(BaseModel):
    day: date
    version: int | None = Field(description="The day plan's version; null: not planned")
    generated_at: datetime
    crews: list[BoardCrew]
    routes: list[BoardRoute]
    jobs: list[BoardJob]
    wards: list[tuple[str, str]] = Field(
        description="[code, name] of the wards in force (empty in a partial answer)"
    )
    partial: bool = Field(
        default=False,
        description="Only the asked-for jobs and crews' routes (ids/crews); "
        "an asked-for job missing from it is no longer open field work",
    )


# Work orders open for field work: transferred ones are another agency's now.
_NOT_FIELD_WORK = frozenset({"transferred"})
_ALL = 1_000_000


def board(
    session: Session,
    *,
    jurisdiction_id: int,
    day: date,
    work_order_ids: Collection[int] | None = None,
    crews: Collection[str] | None = None,
) -> Board:
    """Return everything the dispatcher's page shows for ``day``: open work, crews, routes.

    Read through the owning packages' query functions: work orders and their SLA state
    (work_orders), wards (layers), crews, the queue, appointments and the plan (dispatch), the
    first report of each incident (intake).

    With ``work_order_ids`` or ``crews`` the answer is partial, for a page that already has the
    rest: the open jobs with those ids or on those crews' routes, and only those crews'
    routes; all crews (their load changes with any move) and no wards. A redraw after a move
    or a live event then reads a few dozen jobs instead of a city's backlog (the page asks by
    id for the jobs it shows on those crews, so one that left them is answered too)."""
    partial = work_order_ids is not None or crews is not None
    wanted_ids = set(work_order_ids or ())
    wanted_crews = set(crews or ())
    try:
        plan: plan_views.PlanView | None = plan_views.plan_view(
            session, jurisdiction_id=jurisdiction_id, day=day
        )
    except NoPlan:
        plan = None
    stops = {s.work_order_id: s for r in (plan.routes if plan else []) for s in r.stops}
    left = {u.work_order_id: u for u in (plan.left_out if plan else [])}
    zone = dispatch_service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    all_crews = dispatch_service.list_crews(session, jurisdiction_id=jurisdiction_id)
    crew_codes = {c.id: c.code for c in all_crews}
    if partial:
        # A crew's jobs the page may not know yet: those on its route of the day.
        wanted_ids |= {
            s.work_order_id
            for r in (plan.routes if plan else [])
            if r.crew_code in wanted_crews
            for s in r.stops
        }
    rows = (
        [
            r
            for r in queries.list_work_orders(
                session,
                jurisdiction_id=jurisdiction_id,
                open_only=True,
                work_order_ids=sorted(wanted_ids) if partial else (),
                limit=_ALL,
            )
            if r.work_order.status not in _NOT_FIELD_WORK
        ]
        if wanted_ids or not partial
        else []
    )
    names = {
        c.code: c.name
        for c in category_service.list_categories(session, jurisdiction_id=jurisdiction_id)
    }
    wards = layers_service.ward_codes(session, jurisdiction_id=jurisdiction_id)
    queued = {
        q.work_order_id: q
        for q in assignment.list_queue(
            session,
            jurisdiction_id=jurisdiction_id,
            limit=_ALL,
            work_order_ids=[r.work_order.id for r in rows] if partial else None,
        )
    }
    windows = appointments.appointment_windows(session, jurisdiction_id=jurisdiction_id)
    reports = intake_service.first_reports(
        session,
        jurisdiction_id=jurisdiction_id,
        incident_ids=sorted({r.work_order.incident_id for r in rows}),
    )
    jobs = []
    for row in rows:
        order = row.work_order
        stop = stops.get(order.id)
        window = windows.get(order.id)
        first = reports.get(order.incident_id)
        queue = queued.get(order.id)
        jobs.append(
            BoardJob(
                id=order.id,
                incident_id=order.incident_id,
                tracking_id=first.tracking_id if first else None,
                category=row.category_code,
                category_name=names.get(row.category_code, row.category_code),
                status=order.status,
                crew=crew_codes.get(order.crew_id) if order.crew_id is not None else None,
                ward=wards.get(row.ward_id) if row.ward_id is not None else None,
                lon=row.lon,
                lat=row.lat,
                due_at=order.due_at.astimezone(zone),
                sla=row.sla_state,
                late=stop is not None and stop.arrival > order.due_at,
                eta=stop.arrival if stop else None,
                seq=stop.seq if stop else None,
                locked=stop.locked if stop else False,
                appointment=(window[0].astimezone(zone), window[1].astimezone(zone))
                if window
                else None,
                queued=queue.reason if queue else None,
                queued_detail=queue.detail if queue else None,
                left_out=left[order.id].detail if order.id in left else None,
                description=first.description if first else "",
                address=first.address if first else None,
                reports=first.report_count if first else 0,
                version=order.version,
            )
        )
    working = {
        c.code: c
        for c in dispatch_service.crews_on(session, jurisdiction_id=jurisdiction_id, day=day)
    }
    routes = {r.crew_code: r for r in (plan.routes if plan else [])}
    board_crews = []
    for index, crew in enumerate(all_crews):
        on = working.get(crew.code)
        shift_s = int((on.shift_end - on.shift_start).total_seconds()) if on else 0
        route = routes.get(crew.code)
        busy_s = int((route.back - route.depart).total_seconds()) if route else 0
        board_crews.append(
            BoardCrew(
                id=crew.id,
                code=crew.code,
                name=crew.name,
                colour=PALETTE[index % len(PALETTE)],
                working=on is not None,
                shift_s=shift_s,
                busy_s=busy_s,
                free_s=max(0, shift_s - busy_s),
                service_s=sum(
                    int((s.end - s.start).total_seconds()) for s in (route.stops if route else [])
                ),
            )
        )
    now = datetime.now(UTC)
    extent = (
        None
        if partial
        else layers_service.jurisdiction_extent(session, jurisdiction_id=jurisdiction_id, at=now)
    )
    in_force = (
        layers_service.ward_outlines(
            session, jurisdiction_id=jurisdiction_id, at=now, bbox=extent, tolerance_deg=0.01
        )
        if extent is not None
        else []
    )
    return Board(
        day=day,
        version=plan.version if plan else None,
        generated_at=datetime.now(UTC),
        crews=board_crews,
        routes=[
            BoardRoute(
                crew=r.crew_code,
                line=r.line,
                depart=r.depart,
                back=r.back,
                stops=[s.work_order_id for s in r.stops],
            )
            for r in (plan.routes if plan else [])
            if not partial or r.crew_code in wanted_crews
        ],
        jobs=jobs,
        wards=sorted((w.code, w.name) for w in in_force),
        partial=partial,
    )


# --- the page ------------------------------------------------------------------------------


def render_page(
    context: shell.PageContext,
    *,
    session: Session,
    jurisdiction_id: int,
    day: date,
    tile_url: str,
    tile_attribution: str,
    tile_max_zoom: int,
    nonce: str,
) -> str:
    """Return the /dispatch page's HTML for ``day`` (its data comes from the board API)."""
    words = i18n.messages(context.language)
    zone = dispatch_service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    extent = layers_service.jurisdiction_extent(
        session, jurisdiction_id=jurisdiction_id, at=datetime.now(UTC)
    )
    fmap, _, tiles = public_map.build_map(
        extent=extent,
        tile_url=tile_url,
        tile_attribution=tile_attribution,
        tile_max_zoom=tile_max_zoom,
    )
    # Its own cluster: crowds merge only where markers touch, and not at street zoom, so the
    # crew colours stay readable; chunked loading keeps a city's backlog smooth.
    cluster = MarkerCluster(  # type: ignore[no-untyped-call]
        name="work",
        options={
            "showCoverageOnHover": False,
            "maxClusterRadius": CLUSTER_RADIUS_PX,
            "disableClusteringAtZoom": 16,
            "chunkedLoading": True,
        },
    )
    cluster.add_to(fmap)
    rendered = folium_assets.render(fmap.get_root(), drop_header_of=fmap, nonce=nonce)
    module = f'<script type="module" src="{own_url("dispatch.js")}"></script>'
    return shell.render(
        "dispatch.html",
        context,
        title=words["page.dispatch"],
        head=shell.Markup(
            rendered.head + f'\n<link rel="stylesheet" href="{own_url("dispatch.css")}">'
        ),
        scripts=shell.Markup(rendered.script + "\n" + module),
        map_html=shell.Markup(rendered.body),
        map_name=fmap.get_name(),
        cluster_name=cluster.get_name(),
        tiles_name=tiles.get_name() if tiles is not None else "",
        day=day.isoformat(),
        # The shared push channel's module (maps/static/live.js); without it the page polls.
        live_url=own_url("live.js") if "live.js" in own_assets() else "",
        timezone=str(zone),
        categories=category_service.list_categories(session, jurisdiction_id=jurisdiction_id),
        statuses=_OPEN,
        words_json=json.dumps({k: words[k] for k in _SCRIPT_WORDS}),
    )


def render_forbidden(context: shell.PageContext) -> str:
    """Return the page for a signed-in user whose role may not see the dispatcher's page."""
    words = i18n.messages(context.language)
    return shell.render("dispatch_forbidden.html", context, title=words["dispatch.forbidden_title"])


def today(session: Session, *, jurisdiction_id: int) -> date:
    """Return today's date in the jurisdiction's time zone (the page's default day)."""
    zone = dispatch_service.jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)
    return datetime.now(zone).date()
