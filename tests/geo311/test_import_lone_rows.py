"""The importer's shortcut for lone rows (rows no other row of the file can meet skip the
candidate search, and their incidents stay out of the live set) changes nothing: the same file
imported with and without it gives the same incidents, joins, decisions and scores."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from geo311.kernel.database import Database
from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import importer
from geo311.resident.dedup.importing import lone
from layers import service as layers_service
from tests.geo311.dedup_support import offset, quiet_point, rows

HEADER = ["id", "time", "category", "lat", "lon", "address", "status", "closed_at"]
DAY = timedelta(days=1)
OPEN = timedelta(hours=DedupSettings().open_window_h)
REOPEN = timedelta(hours=DedupSettings().reopen_window_h)
# A history far from the demo city's own incidents in time (none of them is live then); the
# second import of the same rows comes years later still, so the first one's are not live.
T0 = datetime(2031, 1, 6, 8, 0, tzinfo=UTC)
LATER = timedelta(days=4 * 365)

Row = tuple[str, datetime, str, float, float, str, datetime | None]


def _history(base: tuple[float, float], light: tuple[float, float]) -> list[Row]:
    """Return rows mixing lone rows, close pairs, chains, reopenings, asset rows and rows at
    the window and radius edges (pothole radius 25 m; the largest radius 50 m, the largest
    snap radius 40 m: a reach of 130 m)."""
    rng = random.Random(16)
    out: list[Row] = []

    def add(code: str, at: datetime, point: tuple[float, float], closed: datetime | None) -> None:
        out.append((f"R{len(out)}", at, code, point[0], point[1], "", closed))

    # Lone rows: a 300 m grid of spots, one report each, at random times over two years; a
    # few share a spot a year apart (beyond every window).
    for k in range(40):
        spot = offset(*offset(*base, 300.0 * (k % 8), 90.0), 300.0 * (k // 8), 0.0)
        at = T0 + timedelta(hours=rng.uniform(0, 2 * 365 * 24))
        add("pothole", at, spot, at + timedelta(hours=rng.uniform(1, 200)) if k % 3 else None)
        if k % 10 == 0:
            add("graffiti", at + 400 * DAY, spot, None)
    # Pairs 3 km east: the second row at the radius' and the window's edges, either side.
    pairs = offset(*base, 3000.0, 90.0)
    for k, (metres, gap) in enumerate(
        [(5.0, DAY), (24.9, DAY), (25.1, DAY), (10.0, OPEN - timedelta(seconds=1)),
         (10.0, OPEN + timedelta(seconds=1)), (129.0, DAY), (131.0, DAY), (60.0, 2 * DAY)]
    ):  # fmt: skip
        first = offset(*pairs, 400.0 * k, 0.0)
        at = T0 + k * 3 * DAY
        add("pothole", at, first, None)
        add("pothole", at + gap, offset(*first, metres, 45.0), None)
    # A chain 3 km north (missed collection, radius 50 m): reports 45 m east of A every 5 days
    # keep A's incident alive; C, 45 m west of A 100 days after it, 90 m from every link,
    # finds it only through the last link: a rule of one radius around the row, or of A's
    # time alone, would call C lone.
    chain = offset(*base, 3000.0, 0.0)
    add("missed_collection", T0, chain, None)
    for k in range(1, 20):
        add("missed_collection", T0 + 5 * k * DAY, offset(*chain, 45.0, 90.0), None)
    add("missed_collection", T0 + 100 * DAY, offset(*chain, 45.0, 270.0), None)
    # Closed late: P closed 200 days after it came; X near it 5 days after the closing reopens
    # it (P's own time is far outside every window).
    late = offset(*chain, 600.0, 90.0)
    add("pothole", T0, late, T0 + 200 * DAY)
    add("pothole", T0 + 205 * DAY, offset(*late, 8.0, 0.0), None)
    # At the reopen window's edges: closed after a day, then a report just inside and just
    # outside the reopen window, each at its own closed incident.
    for k, gap in enumerate([REOPEN - timedelta(seconds=1), REOPEN + timedelta(seconds=1)]):
        spot = offset(*late, 600.0 * (k + 1), 90.0)
        add("pothole", T0, spot, T0 + DAY)
        add("pothole", T0 + DAY + gap, offset(*spot, 5.0, 180.0), None)
    # Asset rows: two reports on one streetlight, 30 m either side of it, and a third near.
    for k, metres in enumerate((-30.0, 30.0, 10.0)):
        add("streetlight_out", T0 + k * DAY, offset(*light, metres, 90.0), None)
    # A busy spot: random reports within 60 m over a year, some closed.
    busy = offset(*base, 3000.0, 45.0)
    for _ in range(60):
        at = T0 + timedelta(hours=rng.uniform(0, 365 * 24))
        point = offset(*busy, rng.uniform(0, 60.0), rng.uniform(0, 360.0))
        closed = at + timedelta(hours=rng.uniform(1, 400)) if rng.random() < 0.6 else None
        add(rng.choice(["pothole", "sidewalk_damage"]), at, point, closed)
    return out


def _write(path: Path, history: list[Row], *, prefix: str, shift: timedelta) -> None:
    rng = random.Random(7)
    shuffled = history[:]
    rng.shuffle(shuffled)  # the file's order is not the time order
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for ext, at, code, lon, lat, address, closed in shuffled:
            out.writerow(
                [prefix + ext, (at + shift).isoformat(), code, lat, lon, address,
                 "Closed" if closed else "Open", (closed + shift).isoformat() if closed else ""]
            )  # fmt: skip


def _import(db: Database, path: Path, *, skip_lone: bool) -> importer.ImportSummary:
    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
    return importer.import_reports(
        db,
        jurisdiction=jurisdiction,
        path=path,
        mapping=importer.ImportMapping.model_validate({"timezone": "UTC"}),
        settings=DedupSettings(),
        skip_lone=skip_lone,
    )


def _outcome(db: Database, prefix: str, shift: timedelta) -> dict[str, Any]:
    """Return, per imported row (by its id without the prefix): the rows of its incident, the
    row it was matched to, its decision, score and signals, and its incident's final status
    and closing (times taken back by ``shift``)."""
    found = rows(
        db,
        """
        SELECT r.external_id, r.incident_id, m.external_id, r.dedup_decision, r.dedup_score,
               r.dedup_signals, i.status, i.closed_at, i.opened_at
        FROM reports AS r
        JOIN incidents AS i ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id
        LEFT JOIN reports AS m
          ON m.jurisdiction_id = r.jurisdiction_id AND m.id = r.matched_report_id
        WHERE r.external_id LIKE :prefix
        """,
        prefix=prefix + "%",
    )
    members: dict[int, list[str]] = {}
    for ext, incident_id, *_ in found:
        members.setdefault(incident_id, []).append(ext.removeprefix(prefix))
    out: dict[str, Any] = {}
    for ext, incident_id, matched, kind, score, signals, status, closed_at, opened_at in found:
        out[ext.removeprefix(prefix)] = (
            sorted(members[incident_id]),
            matched.removeprefix(prefix) if matched else None,
            kind,
            score,
            json.dumps(_without_ids(signals), sort_keys=True),
            status,
            None if closed_at is None else closed_at - shift,
            opened_at - shift,
        )
    return out


def _without_ids(value: Any) -> Any:
    """Return the stored signals without row ids (the two imports number rows apart)."""
    if isinstance(value, dict):
        return {
            k: _without_ids(v) for k, v in value.items() if k not in ("incident_id", "report_id")
        }
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def test_the_lone_row_shortcut_gives_the_same_incidents_and_joins(
    demo_db: Database, tmp_path: Path
) -> None:
    base = quiet_point(demo_db, nth=0)
    light = rows(
        demo_db,
        "SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE asset_type = 'streetlight' "
        "ORDER BY id LIMIT 1",
    )[0]
    history = _history(base, (light[0], light[1]))
    searched, shortcut = tmp_path / "searched.csv", tmp_path / "shortcut.csv"
    _write(searched, history, prefix="A", shift=timedelta(0))
    _write(shortcut, history, prefix="B", shift=LATER)

    without = _import(demo_db, searched, skip_lone=False)
    with_ = _import(demo_db, shortcut, skip_lone=True)

    assert without.lone == 0
    assert with_.lone > 20  # the shortcut was taken, for most of the lone spots
    a, b = _outcome(demo_db, "A", timedelta(0)), _outcome(demo_db, "B", LATER)
    assert len(a) > 100
    assert a == b
    kinds = [v[2] for v in a.values()]
    assert kinds.count("matched") > 10
    assert kinds.count("reopened") >= 2
    # The edge cases decided as their rules say, so the comparison above covers them.
    chain_c = a["R" + str(_index(history, T0 + 100 * DAY, "missed_collection"))]
    assert chain_c[2] == "matched"
    assert len(chain_c[0]) == 21
    late_x = a["R" + str(_index(history, T0 + 205 * DAY, "pothole"))]
    assert late_x[2] == "reopened"
    assert (without.incidents_opened, without.matched, without.reopened) == (
        with_.incidents_opened,
        with_.matched,
        with_.reopened,
    )


def _index(history: list[Row], at: datetime, code: str) -> int:
    (k,) = [int(r[0][1:]) for r in history if r[1] == at and r[2] == code]
    return k


def test_lone_flags_need_no_neighbour_in_space_and_time() -> None:
    """Unit: two rows 100 m apart a day apart are not lone with a reach of 130 m, and are with
    a reach of 90 m; a report 10 days after another's closing (reopen window 14 days) is not
    lone however long after the first report it comes."""
    records = np.zeros(4, dtype=lone._RECORD)
    records["fields"] = 7
    records["seq"] = [1, 2, 3, 4]
    records["code"] = 1
    day = 86_400.0
    t0 = 1.9e9
    records["t"] = [t0, t0 + day, t0, t0 + 300 * day]
    records["closed"] = [np.nan, np.nan, t0 + 290 * day, np.nan]
    lat = 40.6
    records["lat"] = [lat, lat + 100.0 / 111_000, lat + 0.1, lat + 0.1 + 5.0 / 111_000]
    records["lon"] = -74.0
    kwargs: dict[str, Any] = {
        "group_of_code": [0, 1],
        "size": 5,
        "open_s": 90 * day,
        "reopen_s": 14 * day,
    }
    assert list(lone.lone_flags(records, reach_m=130.0, **kwargs)) == [0, 0, 0, 0, 0]
    assert list(lone.lone_flags(records, reach_m=90.0, **kwargs)) == [0, 1, 1, 0, 0]
    # Without the closing the last two are 300 days apart: both lone.
    records["closed"] = np.nan
    assert list(lone.lone_flags(records, reach_m=90.0, **kwargs)) == [0, 1, 1, 1, 1]


def test_lone_rows_are_looked_for_only_when_a_sample_finds_enough() -> None:
    """Unit: 5,000 rows 1 km apart are all lone; the same rows each with a twin 10 m away (a
    dense file: no row lone) give none, and so do they with 2 % of them left alone (too few to
    be worth the search)."""
    day = 86_400.0
    kwargs: dict[str, Any] = {
        "group_of_code": [0, 1],
        "reach_m": 130.0,
        "open_s": 90 * day,
        "reopen_s": 14 * day,
    }

    def spots(n: int, twins: int) -> Any:
        records = np.zeros(n + twins, dtype=lone._RECORD)
        records["fields"] = 7
        records["seq"] = np.arange(1, n + twins + 1)
        records["code"] = 1
        records["t"] = 1.9e9
        records["closed"] = np.nan
        records["lon"] = -74.0 + (np.arange(n + twins) % n) * 0.012  # ~1 km apart
        records["lat"] = 40.6 + np.where(np.arange(n + twins) < n, 0.0, 10.0 / 111_000)
        return records

    assert sum(lone.lone_flags(spots(5000, 0), size=5001, **kwargs)) == 5000
    assert sum(lone.lone_flags(spots(5000, 5000), size=10_001, **kwargs)) == 0
    assert sum(lone.lone_flags(spots(5000, 4800), size=9801, **kwargs)) == 0
