"""``geo311 import …``: bulk import of past reports from a city's CSV export."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from geo311.kernel.errors import AppError
from geo311.kernel.runtime import open_database
from geo311.kernel.settings import get_settings
from geo311.resident.dedup.importer import (
    FIELD_USES,
    ColumnMap,
    ImportMapping,
    ImportSummary,
    import_reports,
)
from layers import service as layers_service

app = typer.Typer(help="Bulk imports.", no_args_is_help=True)
console = Console()

_PHASES = {
    "stage": "reading and checking",
    "place": "wards and assets",
    "dedup": "deduplicating in time order",
    "report": "writing the report",
}


@app.command()
def reports(
    file: Annotated[Path, typer.Argument(help="CSV file, one report per row, with a header.")],
    mapping_file: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="JSON mapping: {columns: {id, time, category, lat, lon, address, status, "
            "closed, description}, categories: {source value: code}, timezone, time_format, "
            "closed_statuses}. Options below override it.",
        ),
    ] = None,
    id_col: Annotated[str | None, typer.Option(help="Column of the row's id.")] = None,
    time_col: Annotated[str | None, typer.Option(help="Column of the time reported.")] = None,
    category_col: Annotated[
        str | None, typer.Option(help="Column of the category (or complaint type).")
    ] = None,
    lat_col: Annotated[str | None, typer.Option(help="Column of the WGS84 latitude.")] = None,
    lon_col: Annotated[str | None, typer.Option(help="Column of the WGS84 longitude.")] = None,
    address_col: Annotated[str | None, typer.Option(help="Column of the address text.")] = None,
    status_col: Annotated[str | None, typer.Option(help="Column of the status.")] = None,
    closed_col: Annotated[str | None, typer.Option(help="Column of the time closed.")] = None,
    description_col: Annotated[str | None, typer.Option(help="Column of the description.")] = None,
    tie_break_col: Annotated[
        str | None,
        typer.Option(
            help="Column that orders rows of the same time (e.g. the request number, for "
            "day-only dates; numbers sort as numbers). Default: the file's order."
        ),
    ] = None,
    outside: Annotated[
        str | None,
        typer.Option(
            help="Rows just outside the ward map (within --outside-within-m of a ward): "
            "nearest-ward (put them in it), keep (store them without a ward) or skip "
            "(the default). Farther rows are always skipped.",
        ),
    ] = None,
    outside_within_m: Annotated[
        float | None,
        typer.Option(help="How far outside the ward map --outside reaches, metres (default 50)."),
    ] = None,
    category_map: Annotated[
        Path | None,
        typer.Option(
            help="CSV of two columns, source value and category code (empty code: skip those "
            "rows), for files that use the city's own complaint types."
        ),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Time zone of times without an offset.")
    ] = None,
    time_format: Annotated[
        str | None, typer.Option(help="strptime format of the times (default: ISO 8601).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write one line per input row: its id, the incident it joined, the id of the "
            "row it was matched to (empty when it opened a new incident), the signals."
        ),
    ] = None,
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting."),
    ] = None,
) -> None:
    """Import past reports: place them, fold duplicates into incidents in time order, store."""
    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    try:
        mapping = ImportMapping.load(mapping_file) if mapping_file else ImportMapping()
        overrides = {
            "id": id_col,
            "time": time_col,
            "category": category_col,
            "lat": lat_col,
            "lon": lon_col,
            "address": address_col,
            "status": status_col,
            "closed": closed_col,
            "description": description_col,
            "tie_break": tie_break_col,
        }
        columns = mapping.columns.model_dump()
        columns.update({k: v for k, v in overrides.items() if v is not None})
        categories = dict(mapping.categories)
        if category_map is not None:
            categories.update(_read_category_map(category_map))
        mapping = mapping.model_copy(
            update={
                "columns": ColumnMap.model_validate(columns),
                "categories": categories,
                "timezone": timezone or mapping.timezone,
                "time_format": time_format or mapping.time_format,
                "outside": outside or mapping.outside,
                "outside_within_m": mapping.outside_within_m
                if outside_within_m is None
                else outside_within_m,
            }
        )
        mapping = ImportMapping.model_validate(mapping.model_dump())  # checks the overrides
        with open_database(settings) as db:
            with db.session() as session:
                found = layers_service.get_jurisdiction(session, slug)
            if found is None:
                console.print(f"[red]No jurisdiction {slug!r}: load its wards first.[/red]")
                raise typer.Exit(1)
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as bar:
                tasks: dict[str, TaskID] = {}

                def progress(phase: str, done: int, total: int | None) -> None:
                    if phase not in tasks:
                        tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
                    bar.update(tasks[phase], completed=done, total=total)

                summary = import_reports(
                    db,
                    jurisdiction=found,
                    path=file,
                    mapping=mapping,
                    settings=settings.dedup,
                    report_path=report,
                    progress=progress,
                )
    except AppError as exc:
        console.print(f"[red]{escape(exc.detail)}[/red]")
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            console.print(f"[red]{escape(where)}: {escape(error['msg'])}[/red]")
        raise typer.Exit(2) from exc
    _print_summary(summary, report)


def _read_category_map(path: Path) -> dict[str, str | None]:
    """Return the source value → category code pairs of a two-column CSV (header optional)."""
    pairs: dict[str, str | None] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if len(row) < 2 or row[0].strip().casefold() in ("source", "from"):
                    continue
                pairs[row[0].strip()] = row[1].strip() or None
    except OSError as exc:
        console.print(f"[red]{path}: cannot read the category map: {exc}[/red]")
        raise typer.Exit(2) from exc
    return pairs


def _print_summary(summary: ImportSummary, report: Path | None) -> None:
    table = Table(title="Import", show_header=False)
    table.add_row("rows read", f"{summary.rows:,}")
    table.add_row("imported", f"{summary.imported:,}")
    table.add_row("incidents opened", f"{summary.incidents_opened:,}")
    table.add_row("joined an open incident", f"{summary.matched:,}")
    table.add_row("reopened a closed incident", f"{summary.reopened:,}")
    if summary.off:
        table.add_row("dedup off for the category", f"{summary.off:,}")
    if summary.nearest_ward:
        table.add_row("outside the ward map: put in the nearest ward", f"{summary.nearest_ward:,}")
    if summary.kept_outside:
        table.add_row("outside the ward map: kept without a ward", f"{summary.kept_outside:,}")
    for reason, n in summary.skipped.most_common():
        table.add_row(f"skipped: {escape(reason)}", f"{n:,}")
    table.add_row("time", f"{summary.elapsed_s:.1f} s ({summary.rows_per_s:,.0f} rows/s)")
    console.print(table)
    columns = Table(title="Columns read")
    columns.add_column("column")
    columns.add_column("used as")
    for field_name, column, by_default in summary.columns:
        note = " [yellow](found by its default name)[/yellow]" if by_default else ""
        columns.add_row(escape(column), escape(FIELD_USES[field_name]) + note)
    for column in summary.unused_columns:
        columns.add_row(escape(column), "[dim]not used[/dim]")
    console.print(columns)
    if report is not None:
        console.print(f"Report: {report}")
