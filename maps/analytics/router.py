"""The planner's analytics API: thin — parse, check the role, call the queries.

Planners, dispatchers and admins read it; it changes nothing, so no route commits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from geo311.kernel import fields
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import SessionDep, SettingsDep, require_roles
from geo311.kernel.settings import Settings
from layers.deps import JurisdictionDep
from layers.models import Jurisdiction
from maps.analytics import export, hotspots, queries
from maps.analytics.schemas import (
    FiltersOut,
    FollowedWard,
    HeatOut,
    HotspotsOut,
    PeriodOut,
    TrendsOut,
    WardTableOut,
)

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Reader = Annotated[Principal, Depends(require_roles("planner", "dispatcher"))]
From = Annotated[
    fields.Day | None,
    Query(alias="from", description="First local day, YYYY-MM-DD (default: a year before 'to')"),
]
To = Annotated[
    fields.Day | None,
    Query(alias="to", description="Last local day, inclusive (default: today)"),
]
Category = Annotated[str | None, Query(max_length=64, description="Only this category (its code)")]
Group = Annotated[str | None, Query(max_length=64, description="Only this category group")]
Grid = Annotated[
    Literal["ward", "hex"],
    Query(description="Rows per ward of the maps in force (default) or per hexagon cell"),
]
HexSize = Annotated[
    float | None,
    Query(ge=50, le=10_000, description="Hexagon edge in metres (default: the setting)"),
]


def _scope(
    session: Session,
    settings: Settings,
    jurisdiction: Jurisdiction,
    first: fields.Day | None,
    last: fields.Day | None,
    category: str | None,
    group: str | None,
) -> tuple[queries.Period, queries.Filters]:
    period = queries.resolve_period(
        first_day=first,
        last_day=last,
        timezone=jurisdiction.timezone,
        max_days=settings.analytics.max_period_days,
    )
    filters = queries.resolve_filters(
        session, jurisdiction_id=jurisdiction.id, category=category, group=group
    )
    return period, filters


def _ward_table(
    session: Session,
    settings: Settings,
    jurisdiction: Jurisdiction,
    first: fields.Day | None,
    last: fields.Day | None,
    category: str | None,
    group: str | None,
    grid: Literal["ward", "hex"] = "ward",
    size_m: float | None = None,
) -> queries.WardTable:
    period, filters = _scope(session, settings, jurisdiction, first, last, category, group)
    hexagons = None
    if grid == "hex":
        hexagons = hotspots.hex_grid(
            session,
            jurisdiction_id=jurisdiction.id,
            period=period,
            size_m=size_m or settings.analytics.hex_size_m,
            max_cells=settings.analytics.max_hex_cells,
        )
    return queries.ward_table(
        session,
        jurisdiction_id=jurisdiction.id,
        period=period,
        filters=filters,
        min_cases=settings.analytics.min_cases,
        now=datetime.now(UTC),
        grid=hexagons,
    )


@router.get(
    "/wards",
    response_model=WardTableOut,
    summary="Per ward of the maps in force: volumes, rates, times to close, SLA, the city beside",
)
def ward_table(
    _: Reader,
    session: SessionDep,
    settings: SettingsDep,
    jurisdiction: JurisdictionDep,
    first: From = None,
    last: To = None,
    category: Category = None,
    group: Group = None,
    grid: Grid = "ward",
    size_m: HexSize = None,
) -> WardTableOut:
    table = _ward_table(session, settings, jurisdiction, first, last, category, group, grid, size_m)
    return WardTableOut.of(table)


@router.get(
    "/wards.{fmt}",
    summary="The ward table as a file: csv, geojson or gpkg (GeoPackage)",
    response_class=Response,
    responses={
        200: {
            "content": {t: {} for t in export.MEDIA_TYPES.values()},
            "description": "The file",
        }
    },
)
def ward_table_file(
    fmt: Literal["csv", "geojson", "gpkg"],
    _: Reader,
    session: SessionDep,
    settings: SettingsDep,
    jurisdiction: JurisdictionDep,
    first: From = None,
    last: To = None,
    category: Category = None,
    group: Group = None,
    grid: Grid = "ward",
    size_m: HexSize = None,
) -> Response:
    found = _ward_table(session, settings, jurisdiction, first, last, category, group, grid, size_m)
    table = WardTableOut.of(found)
    if found.grid is None:
        geometries = queries.ward_geometries(
            session, jurisdiction_id=jurisdiction.id, ward_ids=[w.id for w in table.wards]
        )
    else:
        by_code = hotspots.hex_geometries(
            session, grid=found.grid, codes=[w.code for w in table.wards]
        )
        geometries = {w.id: by_code[w.code] for w in table.wards}
    return Response(
        export.render(table, geometries, fmt),
        media_type=export.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{export.file_stem(table)}.{fmt}"'},
    )


@router.get(
    "/trends",
    response_model=TrendsOut,
    summary="The ward table's measures by ISO week, for one ward (by code) or the city",
)
def trends(
    _: Reader,
    session: SessionDep,
    settings: SettingsDep,
    jurisdiction: JurisdictionDep,
    first: From = None,
    last: To = None,
    category: Category = None,
    group: Group = None,
    ward: Annotated[
        str | None, Query(max_length=64, description="A ward's code; left out: the city")
    ] = None,
) -> TrendsOut:
    period, filters = _scope(session, settings, jurisdiction, first, last, category, group)
    followed, weeks = queries.trends(
        session,
        jurisdiction_id=jurisdiction.id,
        period=period,
        filters=filters,
        ward_code=ward,
        min_cases=settings.analytics.min_cases,
        now=datetime.now(UTC),
    )
    return TrendsOut(
        period=PeriodOut.of(period),
        filters=FiltersOut(category=category, group=group),
        ward=ward,
        wards=[FollowedWard(id=w.id, code=w.code, name=w.name) for w in followed],
        min_cases=settings.analytics.min_cases,
        weeks=TrendsOut.weeks_of(weeks),
    )


@router.get(
    "/hotspots",
    response_model=HotspotsOut,
    summary="Clusters (DBSCAN), hexagon cells with Getis-Ord Gi*, and repeat locations",
)
def hotspot_map(
    _: Reader,
    session: SessionDep,
    settings: SettingsDep,
    jurisdiction: JurisdictionDep,
    first: From = None,
    last: To = None,
    category: Category = None,
    group: Group = None,
    size_m: Annotated[
        float | None,
        Query(ge=50, le=10_000, description="Hexagon edge in metres (default: the setting)"),
    ] = None,
) -> HotspotsOut:
    period, filters = _scope(session, settings, jurisdiction, first, last, category, group)
    conf = settings.analytics
    srid = hotspots.metric_srid(session, jurisdiction_id=jurisdiction.id)
    size = size_m or conf.hex_size_m
    return HotspotsOut(
        period=PeriodOut.of(period),
        filters=FiltersOut(category=category, group=group),
        parameters={
            "cluster_radius_factor": conf.cluster_radius_factor,
            "cluster_min_reports": conf.cluster_min_reports,
            "size_m": size,
            "gi_permutations": conf.gi_permutations,
            "gi_seed": conf.gi_seed,
            "gi_alpha": conf.gi_alpha,
            "repeat_radius_m": conf.repeat_radius_m,
            "srid": srid,
        },
        clusters=hotspots.clusters(
            session,
            jurisdiction_id=jurisdiction.id,
            period=period,
            filters=filters,
            radius_factor=conf.cluster_radius_factor,
            min_reports=conf.cluster_min_reports,
            srid=srid,
        ),
        cells=hotspots.cells(
            session,
            jurisdiction_id=jurisdiction.id,
            period=period,
            filters=filters,
            size_m=size,
            max_cells=conf.max_hex_cells,
            permutations=conf.gi_permutations,
            seed=conf.gi_seed,
            alpha=conf.gi_alpha,
            srid=srid,
        ),
        repeats=hotspots.repeats(
            session,
            jurisdiction_id=jurisdiction.id,
            period=period,
            filters=filters,
            radius_m=conf.repeat_radius_m,
            srid=srid,
        ),
    )


@router.get(
    "/heat",
    response_model=HeatOut,
    summary="Report density: reports counted per square cell (50 m, grown to fit the cap)",
)
def heat_map(
    _: Reader,
    session: SessionDep,
    settings: SettingsDep,
    jurisdiction: JurisdictionDep,
    first: From = None,
    last: To = None,
    category: Category = None,
    group: Group = None,
) -> HeatOut:
    period, filters = _scope(session, settings, jurisdiction, first, last, category, group)
    srid = hotspots.metric_srid(session, jurisdiction_id=jurisdiction.id)
    grid = hotspots.heat(
        session, jurisdiction_id=jurisdiction.id, period=period, filters=filters, srid=srid
    )
    return HeatOut(
        period=PeriodOut.of(period),
        filters=FiltersOut(category=category, group=group),
        cell_m=grid.cell_m,
        reports=sum(n for _, _, n in grid.cells),
        points=grid.cells,
    )
