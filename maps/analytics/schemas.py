"""What the analytics API sends back."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from maps.analytics.measures import Figures
from maps.analytics.queries import MapInForce, Period, WardTable, Week

RATES_NOTE = (
    "Per-resident rates measure who chooses to report as well as need: a low rate can mean "
    "residents who do not report, not fewer problems."
)


class PeriodOut(BaseModel):
    from_: date = Field(alias="from", description="First local day")
    to: date = Field(description="Last local day (inclusive)")
    timezone: str
    start: datetime = Field(description="The period's first instant")
    end: datetime = Field(description="The instant after the period")

    model_config = {"populate_by_name": True}

    @classmethod
    def of(cls, period: Period) -> PeriodOut:
        return cls(
            from_=period.first_day,
            to=period.last_day,
            timezone=period.timezone,
            start=period.start,
            end=period.end,
        )


class FiltersOut(BaseModel):
    category: str | None
    group: str | None


class MapOut(BaseModel):
    name: str
    valid_from: datetime
    valid_to: datetime | None
    in_force_from: datetime = Field(description="Where the period and the map's validity meet")
    in_force_to: datetime
    whole_period: bool

    @classmethod
    def of(cls, m: MapInForce) -> MapOut:
        return cls(
            name=m.name,
            valid_from=m.valid_from,
            valid_to=m.valid_to,
            in_force_from=m.in_force_from,
            in_force_to=m.in_force_to,
            whole_period=m.whole_period,
        )


class FiguresOut(BaseModel):
    """The measures (definitions in the README, 'Planner analytics')."""

    reports: int
    incidents: int
    duplicate_share: float | None
    rate_per_1000: float | None = Field(description="Reports per 1,000 residents")
    rate_per_asset: float | None = Field(description="Reports per asset (one category chosen)")
    median_close_h: float | None
    p90_close_h: float | None
    sla_breach_share: float | None
    on_time_share: float | None
    on_time_score: float | None = Field(description="On-time share with the city's category mix")
    backlog: int
    backlog_median_age_h: float | None
    reopen_share: float | None
    fixed_yes: int
    fixed_no: int
    fixed_share: float | None

    @classmethod
    def values(cls, fig: Figures) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(fig).items()}


class CityOut(FiguresOut):
    population: int | None
    unplaced_reports: int = Field(description="Reports outside every ward (counted here only)")


class WardOut(FiguresOut):
    id: int
    code: str
    name: str
    map: str
    population: int | None
    assets: int | None
    whole_period: bool = Field(description="Its ward map was in force for the whole period")
    too_few: bool = Field(description="Fewer incidents than min_cases: too few to compare")
    ranked: bool
    gap: dict[str, float | None] = Field(description="Ward minus city, per compared measure")
    rank: dict[str, int | None] = Field(description="1 = highest value among ranked wards")


class WardTableOut(BaseModel):
    period: PeriodOut
    filters: FiltersOut
    maps: list[MapOut] = Field(description="The ward maps in force during the period")
    min_cases: int
    grid: str = Field(
        default="ward", description="'ward': a row per ward; 'hex': a row per hexagon cell"
    )
    cell_m: float | None = Field(
        default=None, description="grid=hex: the hexagons' edge in metres (else null)"
    )
    city: CityOut
    wards: list[WardOut] = Field(
        description="The rows: wards, or with grid=hex the hexagons holding any case (code "
        "'i,j' in ST_HexagonGrid's numbering in the city's UTM zone; no population or assets)"
    )
    notes: list[str]

    @classmethod
    def of(cls, table: WardTable) -> WardTableOut:
        notes = [RATES_NOTE]
        if len(table.maps) > 1:
            notes.append(
                "The period crosses a ward-map change: each map's wards count the cases of "
                "the days it was in force (see maps), and are not ranked."
            )
        if table.grid is not None:
            notes.append(
                f"Rows are hexagons with {table.grid.size_m:g} m edges holding any case of the "
                "period (empty ones are left out), ranked among themselves; the city's "
                "figures are the same as per ward."
            )
        return cls(
            period=PeriodOut.of(table.period),
            filters=FiltersOut(category=table.filters.category, group=table.filters.group),
            maps=[MapOut.of(m) for m in table.maps],
            min_cases=table.min_cases,
            grid="ward" if table.grid is None else "hex",
            cell_m=None if table.grid is None else table.grid.size_m,
            city=CityOut(
                **FiguresOut.values(table.city),
                population=table.city_population,
                unplaced_reports=table.unplaced_reports,
            ),
            wards=[
                WardOut(
                    **FiguresOut.values(row.compared.figures),
                    id=row.ward.id,
                    code=row.ward.code,
                    name=row.ward.name,
                    map=row.map_name,
                    population=row.ward.population,
                    assets=row.assets,
                    whole_period=row.whole_period,
                    too_few=row.compared.too_few,
                    ranked=row.compared.ranked,
                    gap={
                        k: None if v is None else round(v, 4) for k, v in row.compared.gap.items()
                    },
                    rank=row.compared.rank,
                )
                for row in table.rows
            ],
            notes=notes,
        )


class WeekOut(FiguresOut):
    week: date = Field(description="The ISO week's Monday (local)")
    too_few: bool


class FollowedWard(BaseModel):
    id: int
    code: str
    name: str


class TrendsOut(BaseModel):
    period: PeriodOut
    filters: FiltersOut
    ward: str | None = Field(description="The ward code followed; null: the city")
    wards: list[FollowedWard] = Field(description="The ward of each map in force with that code")
    min_cases: int
    weeks: list[WeekOut]

    @classmethod
    def weeks_of(cls, weeks: list[Week]) -> list[WeekOut]:
        return [
            WeekOut(**FiguresOut.values(w.figures), week=w.week, too_few=w.too_few) for w in weeks
        ]


class HotspotsOut(BaseModel):
    period: PeriodOut
    filters: FiltersOut
    parameters: dict[str, float | int]
    clusters: dict[str, Any] = Field(description="GeoJSON polygons: DBSCAN clusters")
    cells: dict[str, Any] = Field(description="GeoJSON hexagons: counts and Gi* z, p, verdict")
    repeats: dict[str, Any] = Field(description="GeoJSON points: spots reported again")


class HeatOut(BaseModel):
    period: PeriodOut
    filters: FiltersOut
    cell_m: float = Field(description="Edge of the square cells, metres (grown to fit the cap)")
    reports: int = Field(description="Reports in the period and filters (the weights' sum)")
    points: list[tuple[float, float, int]] = Field(
        description="[lat, lon, reports] per cell holding any, at the cell's centre"
    )
