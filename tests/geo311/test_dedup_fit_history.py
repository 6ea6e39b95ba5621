"""``geo311 dedup fit`` without a file: learning each category's rule from the reports geo311
itself stored, as the importer placed them and the dispatchers then merged and split them.

A generated history (tests/geo311/dedup_history.py: graffiti duplicates are "same address
within 3 days", pothole duplicates "within 30 m within 14 days") goes through the real
``geo311 import reports`` with the hand-set rule; a dispatcher then corrects, in time order,
every report the rule placed against the known rule (a split for a wrong join, a merge for a
missed one). The fit must learn the known rules from that alone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shapely
from sqlalchemy import text
from typer.testing import CliRunner

from geo311.cli import app as cli
from geo311.kernel.database import Database
from geo311.kernel.settings import DedupSettings, get_settings
from geo311.resident.dedup import grid, moves
from geo311.resident.dedup.scoring import rule_for
from layers import service as layers_service
from layers.service import WardFeature
from tests.geo311.dedup_history import COMPACT, generate, label, lonlat

ORIGIN = (-73.95, 40.70)
# Category, group, hand-set radius: the rule intake and the importer use before any fit.
CATEGORIES = (
    ("graffiti", "cleaning", 30.0),
    ("pothole", "streets", 25.0),
    ("missed_collection", "sanitation", 50.0),
)


@pytest.fixture
def city(monkeypatch: pytest.MonkeyPatch, db: Database) -> Iterator[int]:
    """A city with one ward over the generated history and the three categories."""
    with db.sessions() as session:
        found = layers_service.create_jurisdiction(session, slug="gen", name="Generated")
        corners = [lonlat(ORIGIN, e, n) for e, n in ((-200, -200), (5400, 2300))]
        (w, s), (e, n) = corners
        layers_service.load_ward_map(
            session,
            jurisdiction_id=found.id,
            name="Wards",
            valid_from=datetime(2000, 1, 1, tzinfo=UTC),
            valid_to=None,
            wards=[WardFeature("1", "Ward 1", shapely.MultiPolygon([shapely.box(w, s, e, n)]))],
        )
        for code, group, radius in CATEGORIES:
            session.execute(
                text(
                    "INSERT INTO service_categories (jurisdiction_id, code, name, group_code, "
                    "sla_hours, dedup_radius_m) VALUES (:j, :code, :name, :group, 72, :r)"
                ),
                {"j": found.id, "code": code, "name": code, "group": group, "r": radius},
            )
        session.commit()
        jid = found.id
    monkeypatch.setenv("GEO311_DB__URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "gen")
    get_settings.cache_clear()
    yield jid
    get_settings.cache_clear()


def _originals(rows: list[Any]) -> dict[str, str]:
    """Return each true duplicate's original (the latest earlier report the known rule joins
    it to), by id; graffiti and potholes only (missed collections follow the hand-set rule)."""
    out: dict[str, str] = {}
    for i, row in enumerate(rows):
        if not row.label or row.category == "missed_collection":
            continue
        for j in range(i - 1, -1, -1):
            other = rows[j]
            hours = (row.at - other.at).total_seconds() / 3600
            if other.category != row.category:
                continue
            if row.category == "graffiti" and other.address == row.address and hours <= 72:
                out[row.id] = other.id
                break
            if (
                row.category == "pothole"
                and hours <= 24 * 14
                and grid.distance_m(row.lon, row.lat, other.lon, other.lat) <= 30.0
            ):
                out[row.id] = other.id
                break
    return out


def _correct(db: Database, jid: int, rows: list[Any]) -> tuple[int, int]:
    """Split and merge, in time order, every graffiti and pothole report the importer placed
    against the known rule; return (splits, merges)."""
    originals = _originals(rows)
    splits = merges = 0
    with db.sessions() as session:
        stored = {
            ext: (rid, tracking)
            for ext, rid, tracking in session.execute(
                text("SELECT external_id, id, tracking_id FROM reports WHERE jurisdiction_id = :j"),
                {"j": jid},
            ).all()
        }

        def incident_of(rid: int) -> int:
            return int(
                session.execute(
                    text("SELECT incident_id FROM reports WHERE jurisdiction_id = :j AND id = :r"),
                    {"j": jid, "r": rid},
                ).scalar_one()
            )

        def has_earlier(rid: int) -> bool:
            return bool(
                session.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM reports AS x JOIN reports AS r "
                        "ON r.jurisdiction_id = x.jurisdiction_id AND r.incident_id = "
                        "x.incident_id WHERE r.jurisdiction_id = :j AND r.id = :r "
                        "AND (x.reported_at, x.id) < (r.reported_at, r.id))"
                    ),
                    {"j": jid, "r": rid},
                ).scalar_one()
            )

        for row in rows:
            if row.category == "missed_collection":
                continue
            rid, tracking = stored[row.id]
            joined = has_earlier(rid)
            if joined and not row.label:
                moves.split(
                    session, jurisdiction_id=jid, tracking_id=tracking, actor="t", reason="two"
                )
                splits += 1
            elif row.label and not joined:
                moves.merge(
                    session,
                    jurisdiction_id=jid,
                    into_incident_id=incident_of(stored[originals[row.id]][0]),
                    from_incident_id=incident_of(rid),
                    actor="t",
                    reason="one",
                )
                merges += 1
        session.commit()
    return splits, merges


def test_fit_without_a_file_learns_from_what_the_dispatchers_corrected(
    city: int, db: Database, tmp_path: Path
) -> None:
    current = {code: rule_for(DedupSettings(), radius_m=r) for code, _, r in CATEGORIES}
    raw = sorted(generate(ORIGIN, days=180, bands=COMPACT), key=lambda r: r[1])
    rows = label(ORIGIN, raw, current)
    source = tmp_path / "history.csv"
    with source.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon", "address"])
        for r in rows:
            out.writerow([r.id, r.at.isoformat(), r.category, r.lat, r.lon, r.address])
    imported = CliRunner().invoke(cli, ["import", "reports", str(source)])
    assert imported.exit_code == 0, imported.output
    with db.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM reports")).scalar_one() == len(rows)

    # A label column belongs to a file: asked without one, the command says so, stores nothing.
    wrong = CliRunner().invoke(
        cli, ["dedup", "fit", "--dup-label-col", "status"], env={"COLUMNS": "240"}
    )
    assert wrong.exit_code == 2
    assert "labelled by its incidents" in wrong.output

    splits, merges = _correct(db, city, rows)
    # The hand-set rule joined neighbours' graffiti and missed potholes 25-30 m apart.
    assert splits > 20
    assert merges > 20

    fitted = CliRunner().invoke(cli, ["dedup", "fit", "--from-history"], env={"COLUMNS": "240"})
    assert fitted.exit_code == 0, fitted.output
    assert f"{splits:,} splits" in fitted.output
    assert f"{merges:,} merges" in fitted.output
    with db.sessions() as session:
        stored: dict[str, Any] = dict(
            session.execute(
                text("SELECT category_code, params FROM dedup_models WHERE jurisdiction_id = :j"),
                {"j": city},
            ).all()
        )
    assert {"graffiti", "pothole"} <= set(stored), fitted.output
    for code in ("graffiti", "pothole"):
        scores = stored[code]["scores"]
        assert scores["later_f1"] >= 0.9, (code, scores)
        assert scores["later_f1"] > scores["current_f1"], (code, scores)

    # The stored models decide at the next import: next door the same hour is another
    # problem; the same house the next day is the same one.
    later = tmp_path / "later.csv"
    lon, lat = lonlat(ORIGIN, 120.0, 2 * 400.0 + 150.0)
    lon2, lat2 = lonlat(ORIGIN, 126.0, 2 * 400.0 + 150.0)
    with later.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon", "address"])
        out.writerow(["n1", "2026-03-01T09:00:00+00:00", "graffiti", lat, lon, "80 Pine Road"])
        out.writerow(["n2", "2026-03-01T09:40:00+00:00", "graffiti", lat2, lon2, "82 Pine Road"])
        out.writerow(["n3", "2026-03-02T11:00:00+00:00", "graffiti", lat, lon, "80 Pine Rd"])
    lines_path = tmp_path / "report.csv"
    again = CliRunner().invoke(cli, ["import", "reports", str(later), "--report", str(lines_path)])
    assert again.exit_code == 0, again.output
    with lines_path.open(newline="") as f:
        lines = {line["id"]: line for line in csv.DictReader(f)}
    assert lines["n2"]["matched_id"] == ""
    assert lines["n3"]["matched_id"] == "n1"


def test_fit_without_a_file_on_a_city_without_reports_says_so(city: int, db: Database) -> None:
    result = CliRunner().invoke(cli, ["dedup", "fit"], env={"COLUMNS": "240"})
    assert result.exit_code == 2
    assert "no stored report" in result.output
    with db.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM dedup_models")).scalar_one() == 0
