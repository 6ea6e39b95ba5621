"""A small generated 311 history whose duplicates follow a known rule per category.

- ``graffiti`` (premise-bound, like tree trimming): a duplicate is a report at the same
  address as an earlier one within 3 days; neighbours' houses are 6 m apart and often
  report the same day;
- ``pothole``: a duplicate is a report within 30 m of an earlier one within 14 days, whatever
  the address;
- ``missed_collection``: a city whose flags follow geo311's own hand-set rule (labelled by
  ``learning.predict`` with the current rule), so no fitted model can beat it.

Positions are metres east/north of a point in the demo city, turned into lon/lat.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from geo311.resident.dedup import grid, learning
from geo311.resident.dedup.learning import HistoryRow
from geo311.resident.dedup.scoring import Rule

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
STREETS = ("ELM ST", "OAK AVE", "PINE RD", "MAPLE DR", "BIRCH LN", "CEDAR CT")


def _lonlat(origin: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    lon0, lat0 = origin
    kx = 111_320.0 * math.cos(math.radians(lat0))
    return lon0 + east_m / kx, lat0 + north_m / 110_574.0


def _house(street: int, number: int) -> tuple[float, float]:
    """Metres (east, north) of a house: streets 400 m apart, houses 6 m apart."""
    return number / 2 * 6.0, street * 400.0


# Where each category's reports lie, metres (east, north) of the origin: apart, so that no
# category's reports are another's candidates. ``COMPACT`` fits all three in 5.1 × 2 km.
BANDS = {"graffiti": (0.0, 0.0), "pothole": (0.0, 5000.0), "missed_collection": (0.0, 10000.0)}
COMPACT = {"graffiti": (0.0, 0.0), "pothole": (600.0, 0.0), "missed_collection": (3000.0, 0.0)}


def generate(
    origin: tuple[float, float],
    *,
    days: int = 240,
    seed: int = 7,
    bands: Mapping[str, tuple[float, float]] = BANDS,
) -> list[tuple[str, datetime, float, float, str]]:
    """Return raw reports (category, time, east m, north m, address) in no particular order."""
    rnd = random.Random(seed)
    raw = _generate(rnd, days)
    return [(c, at, e + bands[c][0], n + bands[c][1], a) for c, at, e, n, a in raw]


def _generate(rnd: random.Random, days: int) -> list[tuple[str, datetime, float, float, str]]:
    out: list[tuple[str, datetime, float, float, str]] = []
    for _ in range(days * 2):
        # Tree trimming: a problem at one house, reported again over the next days, and the
        # neighbours next door reporting their own trees on the same day.
        street, number = rnd.randrange(len(STREETS)), 2 * rnd.randrange(1, 60)
        at = T0 + timedelta(hours=rnd.uniform(0, days * 24))
        for k in range(rnd.choice((1, 1, 2, 3))):
            later = at + timedelta(hours=rnd.uniform(0, 24 * 7) if k else 0)
            e, n = _house(street, number)
            out.append(("graffiti", later, e, n, f"{number} {STREETS[street]}"))
        if rnd.random() < 0.5:
            nb = number + rnd.choice((-2, 2))
            e, n = _house(street, nb)
            out.append(
                (
                    "graffiti",
                    at + timedelta(hours=rnd.uniform(0, 12)),
                    e,
                    n,
                    f"{nb} {STREETS[street]}",
                )
            )
    for _ in range(days * 2):
        # Potholes: a hole, reported again from nearby (not always the same address) over
        # the following weeks.
        e0, n0 = rnd.uniform(0, 2000), rnd.uniform(0, 2000)
        at = T0 + timedelta(hours=rnd.uniform(0, days * 24))
        for k in range(rnd.choice((1, 2, 2, 3))):
            later = at + timedelta(hours=rnd.uniform(0, 24 * 24) if k else 0)
            r, a = rnd.uniform(0, 45) if k else 0.0, rnd.uniform(0, 2 * math.pi)
            e, n = e0 + r * math.cos(a), n0 + r * math.sin(a)
            out.append(("pothole", later, e, n, f"{int(e // 6) * 2} MAIN ST"))
    for _ in range(days):
        e0, n0 = rnd.uniform(0, 2000), rnd.uniform(0, 2000)
        at = T0 + timedelta(hours=rnd.uniform(0, days * 24))
        for k in range(rnd.choice((1, 2, 3))):
            later = at + timedelta(hours=rnd.uniform(0, 24 * 60) if k else 0)
            r = rnd.uniform(0, 70) if k else 0.0
            out.append(
                ("missed_collection", later, e0 + r, n0, f"{int((e0 + r) // 6) * 2} LAMP ST")
            )
    return out


def history(
    origin: tuple[float, float], current: Mapping[str, Rule], *, days: int = 240, seed: int = 7
) -> list[HistoryRow]:
    """Return the generated history in time order, labelled by each category's known rule."""
    raw = sorted(generate(origin, days=days, seed=seed), key=lambda r: r[1])
    return label(origin, raw, current)


def lonlat(origin: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    """Return (lon, lat) of a point ``east_m``, ``north_m`` metres from ``origin``."""
    return _lonlat(origin, east_m, north_m)


def label(
    origin: tuple[float, float],
    raw: list[tuple[str, datetime, float, float, str]],
    current: Mapping[str, Rule],
) -> list[HistoryRow]:
    """Return the raw reports (time order) as history rows labelled by each category's known
    rule (``missed_collection``: by ``current``'s)."""
    rows = []
    for k, (category, at, e, n, address) in enumerate(raw):
        lon, lat = _lonlat(origin, e, n)
        rows.append(
            learning.history_row(
                id=str(k),
                at=at,
                category=category,
                group=category,
                lon=lon,
                lat=lat,
                label=False,
                address=address,
            )
        )
    for i, row in enumerate(rows):
        for j in range(i - 1, -1, -1):
            other = rows[j]
            hours = (row.at - other.at).total_seconds() / 3600
            if hours > 24 * 14:
                break
            if other.category != row.category:
                continue
            if row.category == "graffiti" and other.address == row.address and hours <= 72:
                row.label = True
                break
            if row.category == "pothole":
                d = grid.distance_m(row.lon, row.lat, other.lon, other.lat)
                if d <= 30.0:
                    row.label = True
                    break
    lights = [i for i, r in enumerate(rows) if r.category == "missed_collection"]
    candidates = learning.history_candidates(rows, radius_m=250.0, window_h=90 * 24.0)
    for i in learning.predict(
        rows, candidates, {"missed_collection": current["missed_collection"]}, lights
    ):
        rows[i].label = True
    return rows
