"""The planner's measures from aggregated counts: shares, rates, the standardised on-time score,
the city's value, each ward's gap from it and its rank. Pure: no I/O.

Everything here works on a few hundred aggregated rows (unit × category) that PostGIS has
already counted; no report or incident ever reaches Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

# Measures a ward is compared on: the city's value is beside each, and the gap is ward − city.
# Counts (reports, incidents, backlog) are not compared: the city's count is just the sum.
COMPARED: Final[tuple[str, ...]] = (
    "rate_per_1000",
    "rate_per_asset",
    "duplicate_share",
    "median_close_h",
    "p90_close_h",
    "sla_breach_share",
    "on_time_score",
    "backlog_median_age_h",
    "reopen_share",
    "fixed_share",
)


@dataclass
class CategoryCounts:
    """What PostGIS counted for one unit (ward, week, cell) and one category."""

    reports: int = 0
    duplicates: int = 0
    incidents: int = 0
    closed: int = 0
    decided: int = 0
    breached: int = 0
    on_time: int = 0
    backlog: int = 0
    reopened: int = 0
    fixed_yes: int = 0
    fixed_no: int = 0

    def add(self, other: CategoryCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class Quantiles:
    """Order statistics PostGIS computed over a whole unit (they do not add up)."""

    median_close_h: float | None = None
    p90_close_h: float | None = None
    backlog_median_age_h: float | None = None


@dataclass
class Counted:
    """What PostGIS counted for a table: per unit and category, and the order statistics."""

    per_unit: dict[Any, dict[str, CategoryCounts]] = field(default_factory=dict)
    quantiles: dict[Any, Quantiles] = field(default_factory=dict)
    city_quantiles: Quantiles = field(default_factory=Quantiles)

    def counts(self, unit: Any, category: str) -> CategoryCounts:
        return self.per_unit.setdefault(unit, {}).setdefault(category, CategoryCounts())


@dataclass
class Figures:
    """The measures of one unit (or of the city)."""

    reports: int = 0
    incidents: int = 0
    duplicate_share: float | None = None
    rate_per_1000: float | None = None
    rate_per_asset: float | None = None
    median_close_h: float | None = None
    p90_close_h: float | None = None
    sla_breach_share: float | None = None
    on_time_share: float | None = None
    on_time_score: float | None = None
    backlog: int = 0
    backlog_median_age_h: float | None = None
    reopen_share: float | None = None
    fixed_yes: int = 0
    fixed_no: int = 0
    fixed_share: float | None = None


@dataclass
class Compared:
    """A unit's figures beside the city's: the gap (ward − city) and rank per measure."""

    figures: Figures
    too_few: bool
    ranked: bool
    gap: dict[str, float | None] = field(default_factory=dict)
    rank: dict[str, int | None] = field(default_factory=dict)


def share(part: int, whole: int) -> float | None:
    """Return part / whole, or None when there is nothing to divide by."""
    return part / whole if whole > 0 else None


def standardised_on_time(
    own: Mapping[str, CategoryCounts], city: Mapping[str, CategoryCounts]
) -> float | None:
    """Return the unit's on-time share with the city's category mix (direct standardisation).

    For each category the unit has decided work in, its own on-time share (closed within that
    category's SLA ÷ decided) is weighted by the number of decided cases the *city* has in
    that category: Σ w_c·s_c / Σ w_c. A ward whose work is mostly slow-by-nature categories is
    then compared on how it does within each category, not on its mix. (Weighting by the
    ward's own volumes would give back the plain on-time share.) None: nothing decided.
    """
    num = den = 0.0
    # In code order: the same sum to the last bit whichever way the counts were gathered.
    for code, counts in sorted(own.items()):
        if counts.decided == 0:
            continue
        weight = city[code].decided if code in city else 0
        num += weight * counts.on_time / counts.decided
        den += weight
    return num / den if den > 0 else None


def figures(
    per_category: Mapping[str, CategoryCounts],
    quantiles: Quantiles,
    *,
    city_per_category: Mapping[str, CategoryCounts],
    population: int | None,
    assets: int | None,
) -> Figures:
    """Return a unit's measures from its per-category counts and its order statistics."""
    total = CategoryCounts()
    for counts in per_category.values():
        total.add(counts)
    return Figures(
        reports=total.reports,
        incidents=total.incidents,
        duplicate_share=share(total.duplicates, total.reports),
        rate_per_1000=(1000 * total.reports / population) if population else None,
        rate_per_asset=(total.reports / assets) if assets else None,
        median_close_h=quantiles.median_close_h,
        p90_close_h=quantiles.p90_close_h,
        sla_breach_share=share(total.breached, total.decided),
        on_time_share=share(total.on_time, total.decided),
        on_time_score=standardised_on_time(per_category, city_per_category),
        backlog=total.backlog,
        backlog_median_age_h=quantiles.backlog_median_age_h,
        reopen_share=share(total.reopened, total.incidents),
        fixed_yes=total.fixed_yes,
        fixed_no=total.fixed_no,
        fixed_share=share(total.fixed_yes, total.fixed_yes + total.fixed_no),
    )


def compare(
    units: Sequence[tuple[Figures, bool]], city: Figures, *, min_cases: int
) -> list[Compared]:
    """Return each unit beside the city: gaps (ward − city) and ranks (1 = highest value).

    ``units`` pairs each unit's figures with whether it may be ranked at all (e.g. its ward
    map was in force for the whole period). A unit with fewer than ``min_cases`` incidents is
    "too few to compare": its figures are shown, its gaps are None and it is never ranked.
    Ties share a rank.
    """
    out = []
    for fig, rankable in units:
        too_few = fig.incidents < min_cases
        gap: dict[str, float | None] = {}
        for name in COMPARED:
            mine, theirs = getattr(fig, name), getattr(city, name)
            gap[name] = None if too_few or mine is None or theirs is None else mine - theirs
        out.append(Compared(figures=fig, too_few=too_few, ranked=rankable and not too_few, gap=gap))
    for name in COMPARED:
        values = [getattr(c.figures, name) for c in out if c.ranked]
        ordered = sorted((v for v in values if v is not None), reverse=True)
        for c in out:
            value = getattr(c.figures, name)
            c.rank[name] = ordered.index(value) + 1 if c.ranked and value is not None else None
    return out


def merge(rows: Iterable[Mapping[str, CategoryCounts]]) -> dict[str, CategoryCounts]:
    """Return per-category counts summed over several units."""
    total: dict[str, CategoryCounts] = {}
    for row in rows:
        for code, counts in row.items():
            total.setdefault(code, CategoryCounts()).add(counts)
    return total
