"""``geo311 import …``: bulk import of past reports from a city's CSV export."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

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
    bulk: Annotated[
        bool | None,
        typer.Option(
            "--bulk/--no-bulk",
            help="Write as a bulk load: foreign keys checked once at the end, much faster, but "
            "the service waits for the import to finish. Default: only for a large first "
            "import (no report stored yet).",
        ),
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
        with open_database(settings, unless_current=True) as db:
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
                    bulk=bulk,
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
    if summary.lone:
        table.add_row(
            "opened without a search: no other row of the file within reach", f"{summary.lone:,}"
        )
    if summary.off:
        table.add_row("dedup off for the category", f"{summary.off:,}")
    if summary.nearest_ward:
        table.add_row("outside the ward map: put in the nearest ward", f"{summary.nearest_ward:,}")
    if summary.kept_outside:
        table.add_row("outside the ward map: kept without a ward", f"{summary.kept_outside:,}")
    for reason, n in summary.skipped.most_common():
        table.add_row(f"skipped: {escape(reason)}", f"{n:,}")
    table.add_row("time", f"{summary.elapsed_s:.1f} s ({summary.rows_per_s:,.0f} rows/s)")
    table.add_row(
        "time by phase",
        ", ".join(f"{phase} {s:.1f} s" for phase, s in summary.phases_s.items())
        + (" (bulk load)" if summary.bulk else ""),
    )
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


# --- geo311 dedup … -----------------------------------------------------------------------------

dedup_app = typer.Typer(help="Duplicate rules: fit each category's own, and see how they do.")


@dedup_app.command()
def fit(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="CSV of past reports with the city's duplicate labels. Without it: geo311's "
            "own reports, as intake and the dispatchers left them (--from-history)."
        ),
    ] = None,
    dup_label_col: Annotated[
        str | None,
        typer.Option(help="Column that says a row is a duplicate (e.g. status); with FILE."),
    ] = None,
    dup_values: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated values of that column that mean duplicate "
            "(e.g. 'Completed - Dup,Open - Dup'). Default: true/1/yes."
        ),
    ] = None,
    mapping_file: Annotated[
        Path | None, typer.Option("--mapping", help="JSON mapping, as for `import reports`.")
    ] = None,
    id_col: Annotated[str | None, typer.Option(help="Column of the row's id.")] = None,
    time_col: Annotated[str | None, typer.Option(help="Column of the time reported.")] = None,
    category_col: Annotated[str | None, typer.Option(help="Column of the category.")] = None,
    lat_col: Annotated[str | None, typer.Option(help="Column of the WGS84 latitude.")] = None,
    lon_col: Annotated[str | None, typer.Option(help="Column of the WGS84 longitude.")] = None,
    address_col: Annotated[str | None, typer.Option(help="Column of the address text.")] = None,
    status_col: Annotated[str | None, typer.Option(help="Column of the status.")] = None,
    closed_col: Annotated[str | None, typer.Option(help="Column of the time closed.")] = None,
    description_col: Annotated[str | None, typer.Option(help="Column of the description.")] = None,
    category_map: Annotated[
        Path | None, typer.Option(help="CSV of source value → category code, as for import.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Time zone of times without an offset.")
    ] = None,
    radius_m: Annotated[
        float, typer.Option(help="Candidates: earlier reports within this many metres.")
    ] = 250.0,
    window_days: Annotated[
        float, typer.Option(help="Candidates: earlier reports at most this many days before.")
    ] = 90.0,
    later_share: Annotated[
        float, typer.Option(help="Share of the rows, the latest, kept for scoring.")
    ] = 0.3,
    from_history: Annotated[
        bool,
        typer.Option(
            "--from-history",
            help="Learn from the reports geo311 stored: a report that shares its incident "
            "with an earlier one is a duplicate (dispatchers' merges and splits included).",
        ),
    ] = False,
    moves: Annotated[
        bool,
        typer.Option(help="With FILE: also learn from dispatchers' merges (yes) and splits (no)."),
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Store the models even where they do not beat the current rule.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Fit and score, store nothing.")] = False,
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting."),
    ] = None,
) -> None:
    """Learn each category's duplicate rule from the city's labelled history (a file, or the
    reports geo311 stored); keep it where it beats the current rule on the later part."""
    from geo311.resident.dedup import learning
    from geo311.resident.dedup.history import DupLabel, own_history, read_history
    from geo311.resident.dedup.placing import rule_of
    from work_orders.models import ServiceCategory

    if file is not None and from_history:
        console.print("[red]Give either FILE or --from-history, not both.[/red]")
        raise typer.Exit(2)
    if file is not None and dup_label_col is None:
        console.print("[red]With FILE, --dup-label-col says which rows are duplicates.[/red]")
        raise typer.Exit(2)
    if file is None and (dup_label_col is not None or dup_values is not None):
        console.print(
            "[red]--dup-label-col and --dup-values label a FILE; geo311's own history is "
            "labelled by its incidents.[/red]"
        )
        raise typer.Exit(2)
    if not 0.05 <= later_share <= 0.9:
        console.print("[red]--later-share must be between 0.05 and 0.9.[/red]")
        raise typer.Exit(2)
    if radius_m <= 0 or window_days <= 0:
        console.print("[red]--radius-m and --window-days must be positive.[/red]")
        raise typer.Exit(2)
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
            }
        )
        with open_database(settings) as db, db.session() as session:
            found = layers_service.get_jurisdiction(session, slug)
            if found is None:
                console.print(f"[red]No jurisdiction {slug!r}: load its wards first.[/red]")
                raise typer.Exit(1)
            cats = {
                c.code: c
                for c in session.query(ServiceCategory).filter(
                    ServiceCategory.jurisdiction_id == found.id, ServiceCategory.active
                )
            }
            stored = learning.load_models(session, jurisdiction_id=found.id)
            current = {
                code: rule_of(c, settings.dedup, stored.get(code))
                for code, c in cats.items()
                if c.dedup_enabled
            }
            groups = {code: c.group_code for code, c in cats.items() if code in current}
            extra: dict[str, learning.Pairs] = {}
            if file is None:
                # The moves are already in the labels (a merged report shares an incident, a
                # split one has its own): adding their pairs again would count them twice.
                rows, own = own_history(session, jurisdiction_id=found.id, groups=groups)
                console.print(
                    f"{own.rows:,} stored reports, {own.duplicates:,} duplicates (sharing an "
                    f"incident with an earlier report); dispatchers' {own.merges:,} merges "
                    f"and {own.splits:,} splits changed {own.corrected:,} of those labels "
                    "from what intake decided."
                )
            else:
                assert dup_label_col is not None
                label = DupLabel.of(dup_label_col, (dup_values or "").split(","))
                rows, read = read_history(
                    file, mapping=mapping, groups=groups, label=label, timezone=found.timezone
                )
                if moves:
                    extra = learning.pairs_from_moves(session, jurisdiction_id=found.id)
                console.print(
                    f"{read.used:,} of {read.rows:,} rows used, {read.duplicates:,} labelled "
                    f"duplicates; {sum(len(p.y) for p in extra.values()):,} pairs from "
                    "dispatchers' merges and splits."
                )
                for reason, n in read.skipped.most_common(8):
                    console.print(f"  skipped {n:,}: {escape(reason)}")
            result = learning.fit_history(
                rows,
                current=current,
                options=learning.FitOptions(
                    radius_m=radius_m,
                    open_window_h=window_days * 24.0,
                    reopen_window_h=settings.dedup.reopen_window_h,
                    later_share=later_share,
                ),
                extra_pairs=extra,
            )
            chosen = learning.choose(result, force=force)
            print_fit(result, chosen)
            if not dry_run:
                n = learning.store_chosen(
                    session, jurisdiction_id=found.id, chosen=chosen, actor="cli:dedup fit"
                )
                session.commit()
                console.print(f"{n} model(s) stored.")
            else:
                console.print("Dry run: nothing stored.")
    except AppError as exc:
        console.print(f"[red]{escape(exc.detail)}[/red]")
        raise typer.Exit(2) from exc


def _score_cells(s: Any) -> list[str]:
    return [f"{s.tp + s.fp:,}", f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}"]


def print_fit(result: Any, chosen: list[Any]) -> None:
    """Print the fit's tables: each method overall, each category, and what was stored."""
    split = result.split_at.isoformat(timespec="minutes") if result.split_at else "-"
    table = Table(
        title=f"Later part (from {split}): {result.later_rows:,} rows; "
        f"fitted on the {result.fit_rows:,} before"
    )
    for col in ("method", "settings", "flagged", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col in ("method", "settings") else "right")
    for name, s in result.overall.items():
        table.add_row(name, escape(result.settings[name]), *_score_cells(s))
    console.print(table)
    per = Table(title="F1 per category on the later part")
    names = list(result.overall)
    per.add_column("category")
    per.add_column("labelled", justify="right")
    for name in names:
        per.add_column(name, justify="right")
    for code, scores in result.per_category.items():
        labelled = scores[names[0]].labelled
        if labelled:
            per.add_row(code, f"{labelled:,}", *(f"{scores[n].f1:.3f}" for n in names))
    console.print(per)
    decisions = Table(title="Models")
    for col in ("category", "stored", "why", "what it learnt"):
        decisions.add_column(col)
    for c in chosen:
        decisions.add_row(
            c.code,
            "yes" if c.stored else "no",
            escape(c.reason),
            escape(c.model.learnt()) if c.model is not None else "",
        )
    console.print(decisions)


@dedup_app.command()
def report(
    days: Annotated[int, typer.Option(help="Look back this many days.", min=1)] = 30,
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting."),
    ] = None,
) -> None:
    """Show how each category's duplicate rule has done recently: joins, and the splits and
    merges dispatchers made to correct it."""
    from datetime import UTC, datetime, timedelta

    from geo311.resident.dedup import learning

    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    with open_database(settings) as db, db.session() as session:
        found = layers_service.get_jurisdiction(session, slug)
        if found is None:
            console.print(f"[red]No jurisdiction {slug!r}.[/red]")
            raise typer.Exit(1)
        since = datetime.now(UTC) - timedelta(days=days)
        records = learning.recent_record(session, jurisdiction_id=found.id, since=since)
    table = Table(title=f"Duplicate rules, last {days} days")
    for col in (
        "category",
        "rule",
        "fitted",
        "F1 when fitted",
        "reports",
        "joined",
        "split off",
        "merged later",
        "joins kept",
        "found at intake",
    ):
        table.add_column(col, justify="left" if col in ("category", "rule", "fitted") else "right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    for r in records:
        table.add_row(
            r.category_code,
            r.rule,
            r.fitted_at.date().isoformat() if r.fitted_at else "-",
            "-" if r.fitted_f1 is None else f"{r.fitted_f1:.3f}",
            f"{r.reports:,}",
            f"{r.joined:,}",
            f"{r.splits:,}",
            f"{r.merges:,}",
            pct(r.join_precision),
            pct(r.join_recall),
        )
    console.print(table)


@dedup_app.command()
def forget(
    category: Annotated[str, typer.Argument(help="Category code whose fitted model to drop.")],
    jurisdiction: Annotated[
        str | None,
        typer.Option(help="Slug of the jurisdiction. Default: the GEO311_JURISDICTION setting."),
    ] = None,
) -> None:
    """Drop a category's fitted model: it goes back to the hand-set rule."""
    from geo311.resident.dedup import learning

    settings = get_settings()
    slug = jurisdiction or settings.jurisdiction
    with open_database(settings) as db, db.session() as session:
        found = layers_service.get_jurisdiction(session, slug)
        if found is None:
            console.print(f"[red]No jurisdiction {slug!r}.[/red]")
            raise typer.Exit(1)
        if not learning.drop_model(session, jurisdiction_id=found.id, category_code=category):
            console.print(f"[red]{escape(category)} has no fitted model.[/red]")
            raise typer.Exit(1)
        session.commit()
    console.print(f"{escape(category)}: back to the hand-set rule.")
