"""The map pages and their JSON endpoints, and the files they load (maps.assets)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException

from dispatch.schemas import CrewCode
from geo311.kernel import fields
from geo311.kernel.auth.service import Principal
from geo311.kernel.auth.sessions import SignedIn
from geo311.kernel.deps import PageUserDep, SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import AppError
from geo311.kernel.http import allow_images_from, csp_nonce
from geo311.kernel.notify.router import SignerDep
from geo311.kernel.settings import Settings
from layers import service as layers_service
from layers.deps import JurisdictionDep
from layers.models import Jurisdiction
from maps import (
    crew,
    dispatch_page,
    follow,
    i18n,
    nearby,
    planner,
    public_map,
    report_page,
    shell,
    track,
)
from maps import service as maps_service
from maps.assets import OWN_PREFIX, VENDOR_PREFIX, Asset, own_assets, vendor_assets
from maps.crew import router as crew_routes
from maps.schemas import (
    BasemapOut,
    FollowIn,
    FollowOut,
    MapIncidentsOut,
    NearbyOut,
    WardAtOut,
    WardRefOut,
)
from maps.shell import PageContext
from work_orders import categories as category_service

router = APIRouter()
router.include_router(crew_routes.router)

_LANG_COOKIE_AGE_S = 365 * 24 * 3600


def page_context(
    request: Request, jurisdiction: Jurisdiction, *, user: SignedIn | None = None
) -> PageContext:
    """Return what the shell needs for this request: language, city, the signed-in user (and
    the CSRF token of their sign-out form), path."""
    language = i18n.choose(
        query=request.query_params.get("lang"),
        cookie=request.cookies.get(i18n.COOKIE),
        accept_language=request.headers.get("accept-language"),
    )
    return PageContext(
        language=language,
        city=jurisdiction.name,
        user_name=user.principal.name if user is not None else None,
        csrf_token=user.csrf_token if user is not None else None,
        path=request.url.path,
        user_role=user.principal.role if user is not None else None,
    )


def page_response(request: Request, html: str, context: PageContext) -> HTMLResponse:
    """Return a page; a language picked with ?lang= is remembered in a cookie."""
    response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
    if request.query_params.get("lang") == context.language:
        response.set_cookie(
            i18n.COOKIE,
            context.language,
            max_age=_LANG_COOKIE_AGE_S,
            samesite="lax",
            secure=request.url.scheme == "https",
            httponly=True,
        )
    return response


def _map_options(request: Request, settings: Settings) -> dict[str, Any]:
    """Return the tile options every map page takes (no tile URL when the setting names no
    host), and let this response's CSP load the tiles' images."""
    maps_settings = settings.maps
    origin = public_map.tile_origin(maps_settings.tile_url)
    if origin is not None:
        allow_images_from(request, origin)
    return {
        "tile_url": maps_settings.tile_url if origin is not None else "",
        "tile_attribution": maps_settings.tile_attribution,
        "tile_max_zoom": maps_settings.tile_max_zoom,
    }


@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
def public_map_page(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    user: PageUserDep,
) -> HTMLResponse:
    context = page_context(request, jurisdiction, user=user)
    html = public_map.render_page(
        context,
        categories=category_service.list_categories(session, jurisdiction_id=jurisdiction.id),
        extent=layers_service.jurisdiction_extent(
            session, jurisdiction_id=jurisdiction.id, at=datetime.now(UTC)
        ),
        **_map_options(request, settings),
        fixed_days=settings.maps.recent_fixed_days,
        nonce=csp_nonce(request),
    )
    return page_response(request, html, context)


def _login_redirect(request: Request) -> RedirectResponse:
    """Send the browser to sign in, and back to this page afterwards (as geo311.api.signin
    does; maps sits below the API layer, so it builds the same redirect itself)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": here}), status_code=303)


@router.get("/planner", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def planner_page(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    user: PageUserDep,
) -> HTMLResponse | RedirectResponse:
    """The planner's ward heatmaps: planners, dispatchers and admins; anyone else signed in
    gets a 403 page, and nobody signed in is sent to sign in."""
    if user is None:
        return _login_redirect(request)
    context = page_context(request, jurisdiction, user=user)
    if not planner.may_open(user.principal.role):
        response = page_response(request, planner.render_forbidden(context), context)
        response.status_code = 403
        return response
    # The analytics API's own default period: the 365 days up to today, local time.
    today = datetime.now(ZoneInfo(jurisdiction.timezone)).date()
    html = planner.render_page(
        context,
        categories=category_service.list_categories(session, jurisdiction_id=jurisdiction.id),
        extent=layers_service.jurisdiction_extent(
            session, jurisdiction_id=jurisdiction.id, at=datetime.now(UTC)
        ),
        first_day=today - timedelta(days=364),
        last_day=today,
        **_map_options(request, settings),
        nonce=csp_nonce(request),
    )
    return page_response(request, html, context)


@router.get("/crew", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def crew_page(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    user: PageUserDep,
    day: Annotated[str | None, Query(alias="date", max_length=10)] = None,
    crew_code: Annotated[str | None, Query(alias="crew", max_length=64)] = None,
) -> HTMLResponse | RedirectResponse:
    """The crew's day on a tablet: crews (their own), dispatchers and admins (?crew=CODE);
    anyone else signed in gets a 403 page, and nobody signed in is sent to sign in."""
    if user is None:
        return _login_redirect(request)
    context = page_context(request, jurisdiction, user=user)
    if not crew.may_open(user.principal.role):
        response = page_response(request, crew.render_forbidden(context), context)
        response.status_code = 403
        return response
    try:
        shown = date.fromisoformat(day) if day else crew.today_in(jurisdiction.timezone)
    except ValueError:
        shown = crew.today_in(jurisdiction.timezone)
    html = crew.render_page(
        context,
        day=shown,
        crew=crew_code if user.principal.role != "crew" else None,
        extent=layers_service.jurisdiction_extent(
            session, jurisdiction_id=jurisdiction.id, at=datetime.now(UTC)
        ),
        **_map_options(request, settings),
        nonce=csp_nonce(request),
    )
    return page_response(request, html, context)


DispatchReader = Annotated[Principal, Depends(require_roles(*dispatch_page.ROLES))]


@router.get("/api/v1/dispatch/board", response_model=dispatch_page.Board, tags=["plans"])
def dispatch_board(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: DispatchReader,
    day: Annotated[
        fields.Day | None, Query(alias="date", description="YYYY-MM-DD (local; default today)")
    ] = None,
    ids: Annotated[
        list[fields.Id] | None,
        Query(alias="id", max_length=2000, description="Only these jobs (repeat: id=1&id=2)"),
    ] = None,
    crews: Annotated[
        list[CrewCode] | None,
        Query(alias="crew", max_length=200, description="Only these crews' routes, their stops"),
    ] = None,
) -> dispatch_page.Board:
    """The dispatcher's page in one answer: every open work order (crew, status, SLA state,
    planned arrival, queue reason, the first report's text), the crews with colour, load and
    free time, and the day's routes. With ``id`` or ``crew``, only what changed: those jobs,
    those crews' jobs and routes (``partial``)."""
    return dispatch_page.board(
        session,
        jurisdiction_id=jurisdiction.id,
        day=day or dispatch_page.today(session, jurisdiction_id=jurisdiction.id),
        work_order_ids=ids,
        crews=crews,
    )


@router.get("/dispatch", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def dispatch_page_route(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    user: PageUserDep,
    day: Annotated[fields.Day | None, Query(alias="date")] = None,
) -> HTMLResponse | RedirectResponse:
    """The dispatcher's map: dispatchers and admins; anyone else signed in gets a 403 page,
    and nobody signed in is sent to sign in."""
    if user is None:
        return _login_redirect(request)
    context = page_context(request, jurisdiction, user=user)
    if not dispatch_page.may_open(user.principal.role):
        response = page_response(request, dispatch_page.render_forbidden(context), context)
        response.status_code = 403
        return response
    html = dispatch_page.render_page(
        context,
        session=session,
        jurisdiction_id=jurisdiction.id,
        day=day or dispatch_page.today(session, jurisdiction_id=jurisdiction.id),
        **_map_options(request, settings),
        nonce=csp_nonce(request),
    )
    return page_response(request, html, context)


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
def report(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    user: PageUserDep,
) -> HTMLResponse:
    """The resident's map-first report page; it posts to POST /api/v1/reports."""
    context = page_context(request, jurisdiction, user=user)
    html = report_page.render_page(
        context,
        categories=category_service.list_categories(session, jurisdiction_id=jurisdiction.id),
        extent=layers_service.jurisdiction_extent(
            session, jurisdiction_id=jurisdiction.id, at=datetime.now(UTC)
        ),
        **_map_options(request, settings),
        nonce=csp_nonce(request),
    )
    return page_response(request, html, context)


@router.get("/api/v1/map/ward", response_model=WardAtOut, tags=["maps"])
def ward_at_point(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
) -> WardAtOut:
    """The ward a point falls in on the ward map in force now (null: outside the city)."""
    ward = layers_service.ward_at(
        session, jurisdiction_id=jurisdiction.id, lon=lon, lat=lat, at=datetime.now(UTC)
    )
    return WardAtOut(ward=WardRefOut(code=ward.code, name=ward.name) if ward else None)


@router.get("/api/v1/map/nearby", response_model=NearbyOut, tags=["maps"])
def nearby_incidents(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    category: Annotated[str, Query(max_length=64)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
) -> NearbyOut:
    """Open incidents a report of ``category`` at the point could be about (the rule dedup
    uses: the category's group, radius and open window), nearest first; public fields only."""
    return nearby.nearby_open(
        session,
        jurisdiction_id=jurisdiction.id,
        category_code=category,
        lon=lon,
        lat=lat,
        dedup=settings.dedup,
        now=datetime.now(UTC),
    )


@router.get("/track/{tracking_id}", response_class=HTMLResponse, include_in_schema=False)
def track_page(
    tracking_id: str,
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    user: PageUserDep,
) -> HTMLResponse:
    """A report's public tracking page; an unknown tracking number gets a 404 page."""
    context = page_context(request, jurisdiction, user=user)
    found = track.tracking(
        session,
        jurisdiction_id=jurisdiction.id,
        tracking_id=tracking_id,
        language=context.language,
    )
    if found is None:
        response = page_response(request, track.render_not_found(context, tracking_id), context)
        response.status_code = 404
        return response
    html = track.render_page(
        context,
        found,
        **_map_options(request, settings),
        timezone=jurisdiction.timezone,
        nonce=csp_nonce(request),
    )
    return page_response(request, html, context)


@router.post(
    "/api/v1/reports/{tracking_id}/follow",
    status_code=202,
    response_model=FollowOut,
    summary="Ask for e-mail updates about a report: a confirmation mail goes to the address",
    tags=["reports"],
)
def follow_report(
    tracking_id: str, body: FollowIn, session: SessionDep, jurisdiction: JurisdictionDep
) -> FollowOut:
    """Double opt-in: nothing is subscribed until the link in the confirmation mail is
    confirmed. The answer is the same whether or not a mail was sent just now."""
    follow.ask_to_follow(
        session,
        jurisdiction_id=jurisdiction.id,
        tracking_id=tracking_id,
        email=body.email,
        language=body.language,
        today=datetime.now(UTC).date(),
    )
    session.commit()
    return FollowOut(
        detail="If the address is right, a message asking to confirm is on its way; "
        "updates start once it is confirmed."
    )


def _follow_page(
    request: Request, context: PageContext, *, status: int = 200, **values: Any
) -> HTMLResponse:
    pending = values.get("pending")
    if isinstance(pending, follow.PendingFollow) and "lang" not in request.query_params:
        # The language the address asked in, as its mail was (a switch link still works).
        context = replace(context, language=pending.language)
    words = i18n.messages(context.language)
    html = shell.render("follow.html", context, title=words["follow.title"], **values)
    response = page_response(request, html, context)
    response.status_code = status
    return response


@router.get("/follow/confirm", response_class=HTMLResponse, include_in_schema=False)
def follow_confirm_page(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    signer: SignerDep,
    user: PageUserDep,
    t: Annotated[str, Query(max_length=500)] = "",
) -> HTMLResponse:
    """The confirmation link's page: a button, because mail scanners open every link."""
    context = page_context(request, jurisdiction, user=user)
    try:
        pending = follow.pending_follow(session, link=signer.read_follow(t))
    except AppError as exc:
        return _follow_page(request, context, status=exc.status, problem=exc.detail)
    return _follow_page(request, context, pending=pending, token=t)


@router.post("/follow/confirm", response_class=HTMLResponse, include_in_schema=False)
def follow_confirm(
    request: Request,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    signer: SignerDep,
    user: PageUserDep,
    t: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    context = page_context(request, jurisdiction, user=user)
    try:
        link = signer.read_follow(t)
        outcome = follow.confirm_follow(session, link=link)
        pending = follow.pending_follow(session, link=link)
    except AppError as exc:
        return _follow_page(request, context, status=exc.status, problem=exc.detail)
    session.commit()
    return _follow_page(request, context, pending=pending, outcome=outcome)


@router.get("/api/v1/map/incidents", response_model=MapIncidentsOut, tags=["maps"])
def map_incidents(
    session: SessionDep, jurisdiction: JurisdictionDep, settings: SettingsDep
) -> MapIncidentsOut:
    """The public map's markers: open incidents and those fixed lately, no personal data."""
    return maps_service.map_incidents(
        session,
        jurisdiction_id=jurisdiction.id,
        now=datetime.now(UTC),
        fixed_days=settings.maps.recent_fixed_days,
        limit=settings.maps.max_markers,
    )


@router.get("/api/v1/basemap", response_model=BasemapOut, tags=["maps"])
def basemap(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    bbox: Annotated[
        str | None,
        Query(
            description="west,south,east,north in degrees (default: the whole city)",
            max_length=200,
        ),
    ] = None,
) -> BasemapOut:
    """geo311's own basemap: ward outlines (the map in force) and the street network, for
    drawing when there are no tiles. Clipped to the city, simplified, bounded in size."""
    return maps_service.basemap(
        session,
        jurisdiction_id=jurisdiction.id,
        bbox=maps_service.parse_bbox(bbox) if bbox is not None else None,
        at=datetime.now(UTC),
        max_streets=settings.maps.basemap_max_streets,
    )


def _file(asset: Asset | None) -> FileResponse:
    if asset is None or not asset.path.is_file():
        raise HTTPException(404, "Not Found")
    return FileResponse(
        asset.path, media_type=asset.media_type, headers={"Cache-Control": asset.cache_control}
    )


@router.get(VENDOR_PREFIX + "/{asset_path:path}", include_in_schema=False)
def vendor_file(asset_path: str) -> FileResponse:
    """A third-party file on the allow-list (maps.assets); anything else is 404."""
    return _file(vendor_assets().get(asset_path))


@router.get(OWN_PREFIX + "/{name}", include_in_schema=False)
def own_file(name: str) -> FileResponse:
    """One of our page modules or styles in maps/static; anything else is 404."""
    return _file(own_assets().get(name))
