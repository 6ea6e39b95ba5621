"""The measures' arithmetic without a database: standardised on-time, gaps, ranks, too few."""

from __future__ import annotations

import pytest

from geo311.kernel.errors import ValidationFailed
from maps.analytics.measures import CategoryCounts, Figures, Quantiles, compare, figures
from maps.analytics.queries import resolve_period


def counts(decided: int, on_time: int, incidents: int | None = None) -> CategoryCounts:
    return CategoryCounts(incidents=incidents or decided, decided=decided, on_time=on_time)


def test_on_time_score_does_not_punish_a_slow_category_mix() -> None:
    # City: 90 fast cases (80 % on time), 10 slow ones (40 % on time).
    city = {"fast": counts(90, 72), "slow": counts(10, 4)}
    # Ward: mostly slow work, and better than the city within each category.
    ward = {"fast": counts(10, 9), "slow": counts(30, 15)}
    fig = figures(ward, Quantiles(), city_per_category=city, population=None, assets=None)
    assert fig.on_time_share == pytest.approx(24 / 40)  # worse than the city's 0.76 …
    assert fig.on_time_score == pytest.approx((90 * 0.9 + 10 * 0.5) / 100)  # … but it is better


def test_rates_need_a_population_and_assets() -> None:
    ward = {"c": CategoryCounts(reports=30, duplicates=3)}
    fig = figures(ward, Quantiles(), city_per_category=ward, population=6000, assets=None)
    assert (fig.rate_per_1000, fig.rate_per_asset, fig.duplicate_share) == (5.0, None, 0.1)
    assert (
        figures(
            ward, Quantiles(), city_per_category=ward, population=None, assets=15
        ).rate_per_asset
        == 2.0
    )


def test_ranks_skip_too_few_and_share_ties() -> None:
    city = Figures(incidents=100, median_close_h=20.0)
    units = [
        (Figures(incidents=50, median_close_h=30.0), True),
        (Figures(incidents=3, median_close_h=99.0), True),  # too few: never ranked
        (Figures(incidents=40, median_close_h=30.0), True),
        (Figures(incidents=40, median_close_h=10.0), False),  # not rankable (partial period)
        (Figures(incidents=20, median_close_h=5.0), True),
    ]
    out = compare(units, city, min_cases=10)
    assert [c.rank["median_close_h"] for c in out] == [1, None, 1, None, 3]
    assert [c.too_few for c in out] == [False, True, False, False, False]
    assert out[1].gap["median_close_h"] is None
    assert out[3].gap["median_close_h"] == -10.0


def test_period_bounds() -> None:
    from datetime import date

    period = resolve_period(
        first_day=date(2026, 3, 1),
        last_day=date(2026, 3, 31),
        timezone="America/Chicago",
        max_days=31,
    )
    assert period.start.isoformat() == "2026-03-01T06:00:00+00:00"
    assert period.end.isoformat() == "2026-04-01T05:00:00+00:00"  # daylight saving began
    with pytest.raises(ValidationFailed):
        resolve_period(
            first_day=date(2026, 3, 1), last_day=date(2026, 4, 1), timezone="UTC", max_days=31
        )
