"""``geo311 layers …``: load ward maps and asset layers from files into the database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from geo311.kernel.runtime import open_database
from geo311.kernel.settings import get_settings
from layers import service
from layers.errors import LayersError, UnknownJurisdiction
from layers.importers import ImportReport, read_assets, read_wards
from layers.models import AssetType

app = typer.Typer(
    help="Load reference geography: versioned ward maps and asset layers "
    "(GeoJSON, Shapefile, GeoPackage, CSV).",
    no_args_is_help=True,
)

jurisdictions_app = typer.Typer(
    help="Jurisdictions: the cities (or districts) geo311 serves, each with its time zone.",
    no_args_is_help=True,
)

T = TypeVar("T")

DATE_FORMATS = ["%Y-%m-%d"]
JurisdictionOpt = Annotated[
    str | None,
    typer.Option(
        "--jurisdiction",
        help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting.",
        show_default=False,
    ),
]
LayerOpt = Annotated[
    str | None, typer.Option(help="Layer to read, for files that hold several (GeoPackage).")
]
SourceCrsOpt = Annotated[
    str | None,
    typer.Option(
        "--source-crs",
        help="CRS of a file that declares none (Shapefile without .prj), or of the "
        "--lon-field/--lat-field columns when they are not WGS84 degrees, e.g. EPSG:2263.",
    ),
]


@app.command()
def wards(
    file: Annotated[Path, typer.Argument(help="Polygon layer: GeoJSON, Shapefile or GeoPackage.")],
    map_name: Annotated[str, typer.Option("--map", help="Name of this ward map version.")],
    valid_from: Annotated[
        datetime,
        typer.Option(
            formats=DATE_FORMATS,
            help="First day the map is in force (midnight, jurisdiction's time zone).",
        ),
    ],
    code_field: Annotated[str, typer.Option(help="Column holding the ward code.")],
    name_field: Annotated[str, typer.Option(help="Column holding the ward name.")],
    valid_to: Annotated[
        datetime | None,
        typer.Option(
            formats=DATE_FORMATS,
            help="First day the map is no longer in force. Default: open-ended.",
        ),
    ] = None,
    population_field: Annotated[
        str | None, typer.Option(help="Column holding the ward's population.")
    ] = None,
    layer: LayerOpt = None,
    source_crs: SourceCrsOpt = None,
    jurisdiction: JurisdictionOpt = None,
    jurisdiction_name: Annotated[
        str | None,
        typer.Option(help="Name for the jurisdiction when it is created. Default: its slug."),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(help="IANA time zone for the jurisdiction when it is created."),
    ] = "UTC",
) -> None:
    """Load a ward map version (wards, council districts, precincts) valid over a period."""
    started = time.perf_counter()
    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    out = Console()
    with out.status(f"Reading {file.name} …"):
        features, report = _or_exit(
            lambda: read_wards(
                file,
                code_field=code_field,
                name_field=name_field,
                population_field=population_field,
                layer=layer,
                source_crs=source_crs,
            )
        )

    created: list[str] = []

    def store() -> str:
        with open_database(settings) as db, db.session() as s:
            j = service.get_jurisdiction(s, slug)
            if j is None:
                j = service.create_jurisdiction(
                    s, slug=slug, name=jurisdiction_name or slug, timezone=timezone
                )
                created.append(slug)
            tz = ZoneInfo(j.timezone)
            service.load_ward_map(
                s,
                jurisdiction_id=j.id,
                name=map_name,
                valid_from=valid_from.replace(tzinfo=tz),
                valid_to=valid_to.replace(tzinfo=tz) if valid_to else None,
                wards=features,
                source=str(file),
            )
            return j.timezone

    with out.status(f"Writing {len(features)} wards …"):
        tz_name = _or_exit(store)
    if created:
        # Said out loud: a jurisdiction made here takes --timezone (UTC unless given), and its
        # times (day-only dates, ward map validity) are read in that zone from now on.
        out.print(
            f"[yellow]Created jurisdiction {escape(slug)!r} with time zone {tz_name}[/yellow] "
            "(`geo311 jurisdictions create` sets its name and zone before loading)."
        )
    period = f"{valid_from:%Y-%m-%d} to {f'{valid_to:%Y-%m-%d}' if valid_to else 'open-ended'}"
    _print_report(
        out,
        f"Ward map {map_name!r} of {slug!r} ({period}, {tz_name})",
        report,
        time.perf_counter() - started,
        show_repairs=True,
    )


@app.command()
def assets(
    file: Annotated[
        Path, typer.Argument(help="Point layer: GeoJSON, Shapefile, GeoPackage or CSV.")
    ],
    asset_type: Annotated[str, typer.Option("--type", help="Asset type code, e.g. hydrant.")],
    id_field: Annotated[str, typer.Option(help="Column holding each asset's own id.")],
    type_name: Annotated[
        str | None,
        typer.Option(help="Name of the asset type. Default: unchanged, or the code when new."),
    ] = None,
    name_field: Annotated[str | None, typer.Option(help="Column holding the asset name.")] = None,
    lon_field: Annotated[
        str | None, typer.Option(help="Column of longitudes (needed for CSV).")
    ] = None,
    lat_field: Annotated[
        str | None, typer.Option(help="Column of latitudes (needed for CSV).")
    ] = None,
    layer: LayerOpt = None,
    source_crs: SourceCrsOpt = None,
    jurisdiction: JurisdictionOpt = None,
) -> None:
    """Load (or update in place) the assets of one type from a point layer."""
    started = time.perf_counter()
    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    out = Console()
    with out.status(f"Reading {file.name} …"):
        features, report = _or_exit(
            lambda: read_assets(
                file,
                id_field=id_field,
                name_field=name_field,
                layer=layer,
                lon_field=lon_field,
                lat_field=lat_field,
                source_crs=source_crs,
            )
        )

    def store() -> int:
        with open_database(settings) as db, db.session() as s:
            j = service.get_jurisdiction(s, slug)
            if j is None:
                raise UnknownJurisdiction(
                    f"no jurisdiction {slug!r}: load its wards first "
                    "(`layers wards … --jurisdiction SLUG` creates it)"
                )
            existing = s.get(AssetType, (j.id, asset_type))
            name = type_name or (existing.name if existing else asset_type)
            service.ensure_asset_type(s, jurisdiction_id=j.id, code=asset_type, name=name)
            return service.load_assets(
                s, jurisdiction_id=j.id, asset_type=asset_type, assets=features
            )

    with out.status(f"Writing {len(features)} assets …"):
        report.written = _or_exit(store)
    _print_report(
        out,
        f"Assets of type {asset_type!r} in {slug!r}",
        report,
        time.perf_counter() - started,
        show_repairs=False,
    )


def _or_exit(step: Callable[[], T]) -> T:
    """Return what ``step`` gives, or print its LayersError and exit with status 1."""
    try:
        return step()
    except LayersError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(exc.message)}")
        raise typer.Exit(1) from exc


def _print_report(
    out: Console, title: str, report: ImportReport, elapsed_s: float, *, show_repairs: bool
) -> None:
    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    layer = f" (layer {report.layer})" if report.layer else ""
    table.add_row("file", escape(f"{report.path}{layer}"))
    table.add_row("read", str(report.read))
    table.add_row("reprojected from", escape(report.reprojected_from or "— (EPSG:4326)"))
    if show_repairs:
        table.add_row("made valid", _counted(report.made_valid))
        if report.merged:
            table.add_row("merged", _counted(report.merged))
    reasons = report.dropped_by_reason
    dropped = str(len(report.dropped))
    if reasons:
        dropped += ": " + "; ".join(f"{n} {why}" for why, n in reasons.items())
    table.add_row("dropped", escape(dropped))
    table.add_row("written", str(report.written))
    table.add_row("elapsed", f"{elapsed_s:.2f} s")
    out.print(table)


def _counted(codes: list[str]) -> str:
    if not codes:
        return "0"
    shown = ", ".join(codes[:20]) + (" …" if len(codes) > 20 else "")
    return escape(f"{len(codes)} ({shown})")


@jurisdictions_app.command("create")
def jurisdictions_create(
    slug: Annotated[str, typer.Argument(help="Short name used in settings and URLs, e.g. nyc.")],
    name: Annotated[str, typer.Option(help="Full name, e.g. 'City of New York'.")],
    timezone: Annotated[
        str,
        typer.Option(
            help="IANA time zone its times are local to, e.g. America/New_York (day-only "
            "dates, ward maps' validity, business calendars)."
        ),
    ],
) -> None:
    """Create a jurisdiction (before its wards, categories and history are loaded)."""
    settings = get_settings()

    def store() -> tuple[int, str]:
        with open_database(settings) as db, db.session() as s:
            j = service.create_jurisdiction(s, slug=slug, name=name, timezone=timezone)
            return j.id, j.timezone

    jid, tz_name = _or_exit(store)
    Console().print(f"Created jurisdiction {slug!r} ({escape(name)}, {tz_name}), id {jid}.")


@jurisdictions_app.command("list")
def jurisdictions_list() -> None:
    """List the jurisdictions: slug, name, time zone."""
    with open_database(get_settings()) as db, db.session() as s:
        rows = [(j.slug, j.name, j.timezone) for j in service.list_jurisdictions(s)]
    table = Table(title="Jurisdictions")
    for col in ("slug", "name", "time zone"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(escape(v) for v in row))
    Console().print(table)
