"""How well geo311 finds duplicates, against the cities' own labels, beside simple rules.

By default, a **time split** per data set (``geo311.resident.dedup.learning.fit_history``, what
``geo311 dedup fit`` runs): a model per complaint type is fitted on the earlier 70 % of the rows
and every method is scored on the later 30 %: geo311's current hand-set rule (defaults, 50 m),
the fitted models, and three simple rules whose settings are chosen on the earlier part (same
address within N days; the best single radius and window; FixMyStreet's 250 m rule, against
reports still open). Each row is compared with the earlier rows of its complaint type.

With ``--import-run``, the whole file also goes through the real importer twice, with the
hand-set rule and with the kept models stored (so intake's and the importer's path is the one
measured), scored on the same later part, with the import's rows/s. With ``--full-import``
too, the earlier whole-file table:

For each labelled data set in ../shared/data (NYC 311 samples: ``is_duplicate`` from
``resolution_description``; Boston 311: ``is_duplicate`` from ``closure_reason``), this script
starts a throwaway PostGIS cluster, loads the city's ward maps (NYC: council districts 20c in
force until 2023, 25b from 2023; Boston: wards), makes one service category per complaint type
(grouped by the agency or department that handles most of that type), and runs the real
``geo311 import reports`` machinery (``geo311.resident.dedup.importer.import_reports``) with
geo311's default dedup settings. A row is predicted a duplicate when geo311 joined it to an earlier
incident (matched or reopened). Compared with the city's label, over every row of the file:

- **geo311** — default settings (DedupSettings(), category radius 50 m): nothing tuned on
  these labels;
- **baseline (a)** — the best open system's rule: same exact category, within 250 m, against
  incidents open at the time (in time order; a duplicate joins, a non-duplicate opens one);
- **baseline (b)** — the best single radius and time window for the data set: a row is a
  duplicate when an earlier row of the same exact category lies within R metres and W hours.
  R and W are grid-searched **on these very labels**, so (b) is an upper bound for any
  radius-and-window rule, not a fair competitor.

    uv run python bench/dedup_eval.py [--data ../shared/data] [--only nyc|boston]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from geo311.kernel import migrate
from geo311.kernel.database import Database
from geo311.kernel.embedded import EmbeddedCluster
from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import grid, learning
from geo311.resident.dedup.importer import ColumnMap, ImportMapping, import_reports
from geo311.resident.dedup.scoring import Candidate, NewReport, normalise_address, rule_for
from layers import service as layers_service
from layers.importers import read_wards

REPO = Path(__file__).resolve().parents[1]
console = Console(width=180)
NEW_YORK = ZoneInfo("America/New_York")
RADII_M = (5, 10, 25, 50, 100, 250, 500)
WINDOWS_H = (1, 6, 24, 72, 168, 720)


@dataclass(frozen=True)
class WardMapSpec:
    path: str
    code_field: str
    name: str
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True)
class DataSet:
    slug: str
    title: str
    csv: str
    columns: ColumnMap
    group_field: str
    label_field: str
    ward_maps: tuple[WardMapSpec, ...]
    note: str
    # Only these agencies mark duplicates at all; scored separately as well (None: all do).
    labelling: tuple[str, ...] | None = None


DATASETS = (
    DataSet(
        slug="nyc",
        title="NYC 311 samples",
        csv="nyc/nyc_311_combined_sample.csv",
        columns=ColumnMap(
            id="unique_key",
            time="created_date",
            category="complaint_type",
            lat="latitude",
            lon="longitude",
            address="incident_address",
            status="status",
            closed="closed_date",
            description="descriptor",
        ),
        group_field="agency",
        label_field="is_duplicate",
        ward_maps=(
            WardMapSpec(
                "nyc/nycc_20c_council_districts.geojson",
                "coun_dist",
                "Council districts 20C",
                datetime(2000, 1, 1, tzinfo=NEW_YORK),
                datetime(2023, 1, 1, tzinfo=NEW_YORK),
            ),
            WardMapSpec(
                "nyc/nycc_25b_council_districts.geojson",
                "CounDist",
                "Council districts 25B",
                datetime(2023, 1, 1, tzinfo=NEW_YORK),
                None,
            ),
        ),
        note="seven extracts of one to a few days each: most duplicates' originals predate "
        "their extract, so no method can find them; only HPD, DEP, DOT, DSNY and TLC ever "
        "mark a duplicate (SOURCES.md), so rows of other agencies count as non-duplicates "
        "whatever they are",
        labelling=("HPD", "DEP", "DOT", "DSNY", "TLC"),
    ),
    DataSet(
        slug="boston",
        title="Boston 311 (animal types) 2013-2019",
        csv="boston/boston_311_animal_2013_2019.csv",
        columns=ColumnMap(
            id="case_enquiry_id",
            time="open_dt",
            category="type",
            lat="latitude",
            lon="longitude",
            address="location",
            status="case_status",
            closed="closed_dt",
            description="case_title",
        ),
        group_field="department",
        label_field="is_duplicate",
        ward_maps=(
            WardMapSpec(
                "boston/boston_wards.geojson",
                "WARD",
                "Wards",
                datetime(2000, 1, 1, tzinfo=NEW_YORK),
                None,
            ),
        ),
        note="seven years of every animal-related request",
    ),
)


def slug(value: str) -> str:
    """Return a category code for a complaint type."""
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")[:64] or "unknown"


# --- rows and labels ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One input row as the baselines see it."""

    order: int
    id: str
    at: datetime | None
    category: str
    lon: float | None
    lat: float | None
    closed: datetime | None
    label: bool
    agency: str


def _time(raw: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value.replace(tzinfo=NEW_YORK) if value.tzinfo is None else value


def _float(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value != 0.0 else None


def read_rows(path: Path, ds: DataSet) -> tuple[list[Row], dict[str, str]]:
    """Return the rows and each complaint type's group (its most common agency)."""
    rows: list[Row] = []
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    c = ds.columns
    with path.open(newline="", encoding="utf-8-sig") as f:
        for k, rec in enumerate(csv.DictReader(f)):
            category = rec[c.category].strip()
            groups[category][rec[ds.group_field].strip() or "other"] += 1
            closed = _time(rec[c.closed]) if c.closed else None
            at = _time(rec[c.time])
            rows.append(
                Row(
                    order=k,
                    id=rec[c.id],
                    at=at,
                    category=category,
                    lon=_float(rec[c.lon]),
                    lat=_float(rec[c.lat]),
                    closed=closed if closed is None or at is None or closed >= at else at,
                    label=rec[ds.label_field].strip().lower() in ("true", "1", "yes"),
                    agency=rec[ds.group_field].strip(),
                )
            )
    return rows, {cat: slug(cnt.most_common(1)[0][0]) for cat, cnt in groups.items()}


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(rows: list[Row], predicted: Callable[[Row], bool]) -> Score:
    tp = fp = fn = 0
    for row in rows:
        guess = predicted(row)
        tp += guess and row.label
        fp += guess and not row.label
        fn += (not guess) and row.label
    return Score(tp, fp, fn)


# --- baselines -----------------------------------------------------------------------------------


def _placed(rows: Iterable[Row]) -> list[Row]:
    """Return the rows with a time and a position, in time order (file order on ties)."""
    ok = [r for r in rows if r.at is not None and r.lon is not None and r.lat is not None]
    return sorted(ok, key=lambda r: (r.at or datetime.min, r.order))


def _cell(lon: float, lat: float, size_deg: float) -> tuple[int, int]:
    return (math.floor(lon / size_deg), math.floor(lat / size_deg))


def baseline_open_250(rows: list[Row], radius_m: float = 250.0) -> set[str]:
    """Baseline (a): ids of rows within ``radius_m`` of an incident of the same exact
    category that is open at the row's time."""
    size = radius_m / 80_000.0  # degrees; ≥ radius in metres at these latitudes
    open_by_cell: dict[tuple[str, int, int], list[Row]] = defaultdict(list)
    dups: set[str] = set()
    for row in _placed(rows):
        assert row.at is not None
        assert row.lon is not None
        assert row.lat is not None
        cx, cy = _cell(row.lon, row.lat, size)
        found = False
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for inc in open_by_cell.get((row.category, cx + dx, cy + dy), ()):
                    assert inc.lon is not None
                    assert inc.lat is not None
                    if (inc.closed is None or inc.closed > row.at) and grid.distance_m(
                        row.lon, row.lat, inc.lon, inc.lat
                    ) <= radius_m:
                        found = True
                        break
                if found:
                    break
            if found:
                break
        if found:
            dups.add(row.id)
        else:
            open_by_cell[(row.category, cx, cy)].append(row)
    return dups


def nearest_earlier_gaps(rows: list[Row]) -> dict[str, dict[int, float]]:
    """For each row, for each radius in RADII_M: the hours since the latest earlier row of the
    same exact category within that radius (rows up to the largest window back)."""
    size = max(RADII_M) / 80_000.0
    horizon = timedelta(hours=max(WINDOWS_H))
    recent: dict[tuple[str, int, int], list[Row]] = defaultdict(list)
    gaps: dict[str, dict[int, float]] = {}
    for row in _placed(rows):
        assert row.at is not None
        assert row.lon is not None
        assert row.lat is not None
        cx, cy = _cell(row.lon, row.lat, size)
        best: dict[int, float] = {}
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                bucket = recent.get((row.category, cx + dx, cy + dy))
                if not bucket:
                    continue
                while bucket and row.at - bucket[0].at > horizon:  # type: ignore[operator]
                    bucket.pop(0)
                for other in bucket:
                    assert other.at is not None
                    assert other.lon is not None
                    assert other.lat is not None
                    d = grid.distance_m(row.lon, row.lat, other.lon, other.lat)
                    hours = (row.at - other.at).total_seconds() / 3600.0
                    for radius in RADII_M:
                        if d <= radius and hours < best.get(radius, math.inf):
                            best[radius] = hours
        gaps[row.id] = best
        recent[(row.category, cx, cy)].append(row)
    return gaps


def baseline_best_window(
    rows: list[Row], scored: list[Row]
) -> tuple[int, int, Score, list[tuple[int, int, Score]]]:
    """Baseline (b): the (radius m, window h) with the best F1 on the labels of ``scored``
    (earlier rows are looked for among all ``rows``)."""
    gaps = nearest_earlier_gaps(rows)
    grid_scores = []
    for radius in RADII_M:
        for window in WINDOWS_H:

            def within(r: Row, radius: int = radius, window: int = window) -> bool:
                return gaps.get(r.id, {}).get(radius, math.inf) <= window

            s = score(scored, within)
            grid_scores.append((radius, window, s))
    radius, window, best = max(grid_scores, key=lambda x: (x[2].f1, -x[0], -x[1]))
    return radius, window, best, grid_scores


# --- geo311 --------------------------------------------------------------------------------------


def load_city(
    pg: EmbeddedCluster, data: Path, ds: DataSet, groups: dict[str, str]
) -> tuple[Database, dict[str, str]]:
    """Return a fresh database with the data set's jurisdiction, ward maps and categories,
    and the category code of each complaint type."""
    name = f"eval_{ds.slug}"
    pg.drop_database(name)
    pg.ensure_database(name)
    migrate.upgrade(pg.url(name))
    db = Database.connect(pg.url(name), pool_size=2)
    with db.session() as session:
        jurisdiction = layers_service.create_jurisdiction(
            session, slug=ds.slug, name=ds.title, timezone="America/New_York"
        )
        for spec in ds.ward_maps:
            wards, _ = read_wards(
                data / spec.path, code_field=spec.code_field, name_field=spec.code_field
            )
            layers_service.load_ward_map(
                session,
                jurisdiction_id=jurisdiction.id,
                name=spec.name,
                valid_from=spec.valid_from,
                valid_to=spec.valid_to,
                wards=wards,
                source=spec.path,
            )
        codes: dict[str, str] = {}
        for category, group in sorted(groups.items()):
            code = slug(category)
            if code in codes.values():
                code = f"{code[:58]}_{len(codes)}"
            codes[category] = code
            # Radius and every dedup setting left at geo311's defaults.
            session.execute(
                text(
                    "INSERT INTO service_categories (jurisdiction_id, code, name, group_code, "
                    "sla_hours) VALUES (:j, :code, :name, :group, 72)"
                ),
                {"j": jurisdiction.id, "code": code, "name": category, "group": group},
            )
    return db, codes


@dataclass(frozen=True)
class Outcome:
    """What geo311 decided for one row: the decision and the id of the row it joined."""

    decision: str
    matched_id: str


def run_geo311(
    db: Database, data: Path, ds: DataSet, codes: dict[str, str], workdir: Path, *, suffix: str
) -> tuple[dict[str, Outcome], float]:
    """Import the file with geo311; return each row's outcome (from --report) and the seconds
    taken."""
    report = workdir / f"{ds.slug}_{suffix}_report.csv"
    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, ds.slug)
    assert jurisdiction is not None
    mapping = ImportMapping(columns=ds.columns, categories=dict(codes), timezone="America/New_York")
    started = time.perf_counter()
    import_reports(
        db,
        jurisdiction=jurisdiction,
        path=data / ds.csv,
        mapping=mapping,
        settings=DedupSettings(),
        report_path=report,
    )
    elapsed = time.perf_counter() - started
    with report.open(newline="") as f:
        outcomes = {
            line["id"]: Outcome(
                line["decision"] or f"skipped: {line['skipped']}", line["matched_id"]
            )
            for line in csv.DictReader(f)
        }
    return outcomes, elapsed


def false_positive_profile(
    rows: list[Row], outcomes: dict[str, Outcome], path: Path, ds: DataSet
) -> str:
    """Return how geo311's joins that the city did not label look: same address as the row
    they joined, and how soon after it."""
    addresses: dict[str, str | None] = {}
    column = ds.columns.address
    with path.open(newline="", encoding="utf-8-sig") as f:
        for rec in csv.DictReader(f):
            addresses[rec[ds.columns.id]] = normalise_address(rec[column]) if column else None
    by_id = {r.id: r for r in rows}
    fps = [
        r for r in rows if not r.label and outcomes.get(r.id, Outcome("", "")).decision == "matched"
    ]
    if not fps:
        return "no false positives"
    same_address = within_day = 0
    for r in fps:
        other = by_id.get(outcomes[r.id].matched_id)
        if other is None:
            continue
        same_address += addresses.get(r.id) is not None and addresses.get(r.id) == addresses.get(
            other.id
        )
        within_day += (
            r.at is not None and other.at is not None and r.at - other.at < timedelta(hours=24)
        )
    return (
        f"of geo311's {len(fps):,} unlabelled joins to an open incident, "
        f"{same_address / len(fps):.0%} have the same address as the report they joined and "
        f"{within_day / len(fps):.0%} came within 24 h of it"
    )


# --- main ----------------------------------------------------------------------------------------


def evaluate(pg: EmbeddedCluster, data: Path, ds: DataSet, workdir: Path) -> None:
    path = data / ds.csv
    rows, by_agency = read_rows(path, ds)
    labelled = sum(r.label for r in rows)
    console.rule(f"[bold]{ds.title}[/bold]")
    console.print(
        f"{len(rows):,} rows, {labelled:,} labelled duplicates ({labelled / len(rows):.2%}), "
        f"{len(by_agency)} complaint types, {len(set(by_agency.values()))} agencies; "
        f"{ds.note}."
    )
    # Two ways to set the city up: every complaint type its own category group (geo311's
    # groups are for categories that name one problem), or the types of one agency in one
    # group (so that, e.g., a plumbing and a heat complaint in one building can be joined).
    variants = {
        "type": {category: slug(category) for category in by_agency},
        "agency": by_agency,
    }
    outcomes: dict[str, dict[str, Outcome]] = {}
    for variant, groups in variants.items():
        db, codes = load_city(pg, data, ds, groups)
        try:
            outcomes[variant], seconds = run_geo311(db, data, ds, codes, workdir, suffix=variant)
        finally:
            db.dispose()
        decisions = Counter(o.decision for o in outcomes[variant].values())
        console.print(
            f"geo311 import, groups by {variant}: {seconds:.1f} s; decisions "
            + ", ".join(f"{k} {v:,}" for k, v in decisions.most_common())
        )
    console.print(false_positive_profile(rows, outcomes["type"], path, ds) + ".")

    def joined(variant: str, *kinds: str) -> set[str]:
        return {i for i, o in outcomes[variant].items() if o.decision in kinds}

    matched_type = joined("type", "matched")
    any_type = joined("type", "matched", "reopened")
    matched_agency = joined("agency", "matched")
    open_250 = baseline_open_250(rows)
    subsets = [("every row", rows)]
    if ds.labelling:
        subsets.append(
            (
                f"rows of the agencies that mark duplicates ({', '.join(ds.labelling)})",
                [r for r in rows if r.agency in ds.labelling],
            )
        )
    d = DedupSettings()
    for subset_name, subset in subsets:
        geo_type = score(subset, lambda r: r.id in matched_type)
        geo_any = score(subset, lambda r: r.id in any_type)
        geo_agency = score(subset, lambda r: r.id in matched_agency)
        a = score(subset, lambda r: r.id in open_250)
        radius, window, b, _ = baseline_best_window(rows, subset)
        table = Table(
            title=f"{ds.title}, {subset_name}: {len(subset):,} rows, "
            f"{sum(r.label for r in subset):,} labelled duplicates"
        )
        for col in ("method", "settings", "flagged", "TP", "FP", "FN", "precision", "recall"):
            table.add_column(col, justify="left" if col in ("method", "settings") else "right")
        table.add_column("F1", justify="right")
        for method, settings, s in (
            (
                "geo311: joined an open incident",
                f"defaults (radius 50 m, threshold {d.threshold}, open window "
                f"{d.open_window_h / 24:.0f} d, age half-life {d.age_half_life_h / 24:.0f} d); "
                "each complaint type its own group",
                geo_type,
            ),
            (
                "geo311: joined or reopened",
                f"the same, also counting reports that reopened an incident closed "
                f"< {d.reopen_window_h / 24:.0f} d before",
                geo_any,
            ),
            (
                "geo311: types grouped by agency",
                "the same defaults, one group per agency (other category: −0.5); joined open",
                geo_agency,
            ),
            ("baseline (a)", "same exact category, ≤ 250 m, open incidents", a),
            (
                "baseline (b), tuned on these labels",
                f"same exact category, ≤ {radius} m and ≤ {window} h after an earlier row "
                f"(best F1 of {len(RADII_M)}×{len(WINDOWS_H)})",
                b,
            ),
        ):
            table.add_row(
                method,
                settings,
                f"{s.tp + s.fp:,}",
                f"{s.tp:,}",
                f"{s.fp:,}",
                f"{s.fn:,}",
                f"{s.precision:.3f}",
                f"{s.recall:.3f}",
                f"{s.f1:.3f}",
            )
        console.print(table)


# --- the time split: current rule, fitted models, simple rules ---------------------------------


def history_of(path: Path, ds: DataSet) -> list[learning.HistoryRow]:
    """Return the file's placed rows as fitting sees them: each complaint type its own
    category and group."""
    c = ds.columns
    out: list[learning.HistoryRow] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        for rec in csv.DictReader(f):
            at = _time(rec[c.time])
            lon, lat = _float(rec[c.lon]), _float(rec[c.lat])
            if at is None or lon is None or lat is None:
                continue
            code = slug(rec[c.category].strip())
            out.append(
                learning.history_row(
                    id=rec[c.id],
                    at=at,
                    category=code,
                    group=code,
                    lon=lon,
                    lat=lat,
                    label=rec[ds.label_field].strip().lower() in ("true", "1", "yes"),
                    address=rec[c.address] if c.address else None,
                    description=rec[c.description] if c.description else None,
                    closed_at=_time(rec[c.closed]) if c.closed else None,
                )
            )
    out.sort(key=lambda r: r.at)
    return out


def _cells(s: learning.Score) -> list[str]:
    return [
        f"{s.tp + s.fp:,}",
        f"{s.tp:,}",
        f"{s.fp:,}",
        f"{s.fn:,}",
        f"{s.precision:.3f}",
        f"{s.recall:.3f}",
        f"{s.f1:.3f}",
    ]


BOOTSTRAP = 1000


def _ceiling(findable: set[int], idx: list[int], labelled: int) -> str:
    """Return the F1 of a method that joins exactly the labelled rows that have a candidate."""
    n = len(findable.intersection(idx))
    return f"{2 * n / (n + labelled):.3f} ({n} of {labelled})" if labelled else "-"


def _paired_bootstrap(result: learning.FitResult, idx: list[int], baselines: Iterable[str]) -> str:
    """Return the fitted model's F1 minus the best baseline's on the rows ``idx``, with its
    90 % interval over resamples of those rows (the same resample for both)."""
    rows = result.history
    fitted = result.predicted["fitted"]
    best = max(baselines, key=lambda n: learning.score_rows(rows, idx, result.predicted[n]).f1)
    other = result.predicted[best]
    # Per row: (label, fitted says duplicate, baseline says duplicate), as 0/1 columns.
    table = np.array([(rows[i].label, i in fitted, i in other) for i in idx], dtype=float)
    rng = np.random.default_rng(311)
    picks = rng.integers(0, len(idx), size=(BOOTSTRAP, len(idx)))

    def f1(label: np.ndarray, guess: np.ndarray) -> np.ndarray:
        tp = (label * guess).sum(axis=1)
        return np.where(tp > 0, 2 * tp / np.maximum(label.sum(axis=1) + guess.sum(axis=1), 1), 0)

    label, a, b = (table[:, k][picks] for k in range(3))
    diff = f1(label, a) - f1(label, b)
    point = learning.score_rows(rows, idx, fitted).f1 - learning.score_rows(rows, idx, other).f1
    low, high = np.percentile(diff, [5, 95])
    return f"{point:+.3f} [{low:+.3f}, {high:+.3f}] ({(diff >= 0).mean():.0%}) vs {best}"


# Typical pairs, to say what a model learnt in plain words: (what, metres, address of the
# earlier report, hours since it, closed by then).
ARCHETYPES = (
    ("same address, 1 h later", 0.0, "12 MAIN ST", 1.0, False),
    ("same address, 5 days later", 0.0, "12 MAIN ST", 120.0, False),
    ("same address, 20 days later", 0.0, "12 MAIN ST", 480.0, False),
    ("same address, 1 day after it closed", 0.0, "12 MAIN ST", 24.0, True),
    ("next door (14 Main St, 8 m), 1 h later", 8.0, "14 MAIN ST", 1.0, False),
    ("30 m away, another street, 1 h later", 30.0, "5 OAK AVE", 1.0, False),
    ("30 m away, no address, 2 days later", 30.0, None, 48.0, False),
    ("100 m away, no address, 1 h later", 100.0, None, 1.0, False),
    ("200 m away, no address, 1 h later", 200.0, None, 1.0, False),
)


def _archetypes(ds: DataSet, chosen: list[learning.CategoryResult]) -> Table:
    """Return, for typical pairs, whether each category's own model joins them."""
    table = Table(
        title=f"{ds.title}: what each model learnt, in plain words: does it join a new report "
        "at 12 Main St to this earlier one? (log-odds against its threshold)"
    )
    table.add_column("earlier report")
    for c in chosen:
        table.add_column(c.code + (" (kept)" if c.stored else " (not kept)"), justify="right")
    now = datetime(2024, 1, 10, 12, tzinfo=NEW_YORK)
    for what, metres, address, hours, closed in ARCHETYPES:
        cells = []
        for c in chosen:
            assert c.model is not None
            new = NewReport(category_code=c.code, at=now, address="12 MAIN ST")
            last = now - timedelta(hours=hours)
            candidate = Candidate(
                incident_id=1,
                category_code=c.code,
                status="closed" if closed else "new",
                distance_m=metres,
                last_report_at=last - timedelta(hours=24) if closed else last,
                closed_at=last if closed else None,
                addresses=(address,) if address else (),
            )
            logit, _, _ = c.model.score(new, candidate, now)
            joins = logit >= c.model.threshold
            cells.append(
                f"{'[green]joins[/green]' if joins else 'apart'} "
                f"({logit:+.1f} {'≥' if joins else '<'} {c.model.threshold:+.1f})"
            )
        table.add_row(what, *cells)
    return table


def evaluate_split(
    data: Path, ds: DataSet, later_share: float
) -> tuple[dict[str, learning.PairModel], list[learning.HistoryRow]]:
    """Fit on the earlier part of the data set, score every method on the later part; return
    the models kept (those that beat the current rule) and the later part's rows."""
    rows = history_of(data / ds.csv, ds)
    codes = sorted({r.category for r in rows})
    # The current rule: geo311's defaults, radius 50 m, for every category.
    current = {code: rule_for(DedupSettings(), radius_m=50.0) for code in codes}
    started = time.perf_counter()
    result = learning.fit_history(
        rows, current=current, options=learning.FitOptions(later_share=later_share)
    )
    seconds = time.perf_counter() - started
    chosen = learning.choose(result)
    console.rule(f"[bold]{ds.title}: time split[/bold]")
    console.print(
        f"{result.rows:,} placed rows ({sum(r.label for r in rows):,} labelled duplicates); "
        f"fitted on the {result.fit_rows:,} before {result.split_at:%Y-%m-%d %H:%M}, scored on "
        f"the {result.later_rows:,} after; fit and scoring {seconds:.1f} s; {ds.note}."
    )
    table = Table(title=f"{ds.title}, later part: every row")
    for col in ("method", "settings", "flagged", "TP", "FP", "FN", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col in ("method", "settings") else "right")
    for name, s in result.overall.items():
        table.add_row(name, result.settings[name], *_cells(s))
    console.print(table)
    shown = (
        "current rule",
        "fitted",
        "same address",
        "best radius and window",
        "FixMyStreet 250 m",
    )
    per = Table(
        title=f"{ds.title}, later part: precision / recall / F1 per category with ≥ 30 labelled "
        "duplicates there, and overall; last column: fitted F1 minus the best baseline's, 90 % "
        f"interval over {BOOTSTRAP} resamples of the rows (share of resamples where fitted ≥); "
        "ceiling: the best F1 any join can reach (labelled rows with an earlier report of their "
        "category within 250 m and 90 days, of all labelled)"
    )
    per.add_column("category")
    per.add_column("rows", justify="right")
    per.add_column("labelled", justify="right")
    for name in shown:
        per.add_column(name + "\nP / R / F1", justify="right")
    per.add_column("fitted − best baseline", justify="right")
    per.add_column("ceiling F1", justify="right")
    # The best any join can do: a labelled row with no earlier report of its category within
    # 250 m and 90 days (its original predates the file) cannot be found by any method here.
    near = learning.history_candidates(result.history, radius_m=250.0, window_h=90 * 24.0)
    findable = {
        i
        for i, found in enumerate(near)
        if result.history[i].label
        and any(result.history[j].category == result.history[i].category for j, _ in found)
    }
    later_idx: dict[str, list[int]] = defaultdict(list)
    for i in range(result.fit_rows, result.rows):
        later_idx[result.history[i].category].append(i)
    groups = [(c, idx) for c, idx in sorted(later_idx.items())]
    groups.append(("(every category)", list(range(result.fit_rows, result.rows))))
    for code, idx in groups:
        scores = {n: learning.score_rows(result.history, idx, result.predicted[n]) for n in shown}
        if scores["current rule"].labelled < 30:
            continue
        per.add_row(
            code,
            f"{len(idx):,}",
            f"{scores['current rule'].labelled:,}",
            *(
                f"{s.precision:.3f} / {s.recall:.3f} / [bold]{s.f1:.3f}[/bold]"
                for s in scores.values()
            ),
            _paired_bootstrap(result, idx, shown[2:]),
            _ceiling(findable, idx, scores["current rule"].labelled),
        )
    console.print(per)
    console.print(
        "[dim]best baseline: the baseline with the best F1 on these rows (chosen after the "
        "fact, so the interval flatters it).[/dim]"
    )
    learnt = Table(title=f"{ds.title}: what each fitted model learnt (categories with a model)")
    for col in ("category", "fit labels", "own/pooled", "kept", "what it weighs most"):
        learnt.add_column(col)
    for c in chosen:
        if c.model is None or c.labelled_fit + c.labelled_later < 30:
            continue
        learnt.add_row(
            c.code,
            f"{c.labelled_fit:,}",
            "pooled" if c.model.pooled else "own",
            "yes" if c.stored else "no",
            c.model.learnt(6),
        )
    console.print(learnt)
    console.print(
        _archetypes(ds, [c for c in chosen if c.model is not None and not c.model.pooled])
    )
    kept = {c.code: c.model for c in chosen if c.stored and c.model is not None}
    ordered = sorted(rows, key=lambda r: r.at)
    return kept, ordered[result.fit_rows :]


def import_check(
    pg: EmbeddedCluster,
    data: Path,
    ds: DataSet,
    workdir: Path,
    models: dict[str, learning.PairModel],
    later: list[learning.HistoryRow],
) -> None:
    """Import the whole file through ``geo311 import reports`` twice, with the hand-set rule and
    with the kept models stored, and score both on the later part (incident-level candidates:
    what a city gets)."""
    _, by_agency = read_rows(data / ds.csv, ds)
    groups = {category: slug(category) for category in by_agency}
    table = Table(title=f"{ds.title}: the real importer, whole file, scored on the later part")
    for col in ("rule", "seconds", "rows/s", "flagged", "TP", "FP", "FN", "precision", "recall"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    table.add_column("F1", justify="right")
    labels = {r.id: r.label for r in later}
    for name in ("current rule", "fitted (kept models)"):
        db, codes = load_city(pg, data, ds, groups)
        try:
            if name.startswith("fitted"):
                with db.session() as session:
                    jurisdiction = layers_service.get_jurisdiction(session, ds.slug)
                    assert jurisdiction is not None
                    for category, code in codes.items():
                        model = models.get(slug(category))
                        if model is not None:
                            learning.store_model(
                                session,
                                jurisdiction_id=jurisdiction.id,
                                model=learning.PairModel.from_params(code, model.params()),
                                actor="bench",
                            )
            outcomes, seconds = run_geo311(db, data, ds, codes, workdir, suffix=slug(name))
        finally:
            db.dispose()
        joined = {i for i, o in outcomes.items() if o.decision in ("matched", "reopened")}
        tp = sum(1 for i, lab in labels.items() if lab and i in joined)
        fp = sum(1 for i, lab in labels.items() if not lab and i in joined)
        fn = sum(1 for i, lab in labels.items() if lab and i not in joined)
        s = learning.Score(tp, fp, fn)
        table.add_row(name, f"{seconds:.1f}", f"{len(outcomes) / seconds:,.0f}", *_cells(s))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--only", choices=[d.slug for d in DATASETS])
    parser.add_argument(
        "--later-share", type=float, default=0.3, help="Share of rows (the latest) scored"
    )
    parser.add_argument(
        "--import-run",
        action="store_true",
        help="Also import the whole file with the current rule and with the kept models",
    )
    parser.add_argument(
        "--full-import",
        action="store_true",
        help="With --import-run: also the earlier whole-file table (every row, two groupings)",
    )
    parser.add_argument(
        "--keep-reports", type=Path, help="Copy geo311's per-row import report here"
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data}: this bench needs ../shared/data")
    console.print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    kept: dict[str, tuple[dict[str, learning.PairModel], list[learning.HistoryRow]]] = {}
    for ds in DATASETS:
        if not args.only or ds.slug == args.only:
            kept[ds.slug] = evaluate_split(args.data, ds, args.later_share)
    if not args.import_run:
        return
    root = Path(tempfile.mkdtemp(prefix="geo311-dedup-eval-"))
    root.chmod(0o755)
    pg = EmbeddedCluster(root / "pg")
    pg.start()
    try:
        for ds in DATASETS:
            if args.only and ds.slug != args.only:
                continue
            import_check(pg, args.data, ds, root, *kept[ds.slug])
            if args.full_import:
                evaluate(pg, args.data, ds, root)
            if args.keep_reports:
                args.keep_reports.mkdir(parents=True, exist_ok=True)
                for found in root.glob(f"{ds.slug}_*_report.csv"):
                    shutil.copy(found, args.keep_reports)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
