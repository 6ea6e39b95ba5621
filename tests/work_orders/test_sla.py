"""SLA clocks in wall-clock and business time, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from work_orders import sla

NY = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def calendar(**kwargs: object) -> sla.BusinessCalendar:
    return sla.parse_calendar(
        timezone="America/New_York",
        hours=kwargs.get("hours", WEEKDAYS_9_TO_5),  # type: ignore[arg-type]
        holidays=kwargs.get("holidays", ()),  # type: ignore[arg-type]
    )


def test_without_a_calendar_hours_are_wall_clock_hours() -> None:
    opened = datetime(2026, 6, 5, 16, 0, tzinfo=UTC)
    times = sla.due_times(opened, 24, None)
    assert times.due_at == opened + timedelta(hours=24)
    assert times.at_risk_at == opened + timedelta(hours=18)


def test_business_hours_skip_nights_and_weekends() -> None:
    # Friday 16:00 + 16 business hours: 1 h on Friday, 8 h on Monday, 7 h on Tuesday.
    opened = datetime(2026, 6, 5, 16, 0, tzinfo=NY)
    assert sla.due_times(opened, 16, calendar()).due_at == datetime(2026, 6, 9, 16, 0, tzinfo=NY)


def test_a_report_outside_hours_starts_counting_at_the_next_opening() -> None:
    opened = datetime(2026, 6, 6, 11, 0, tzinfo=NY)  # Saturday
    assert sla.due_times(opened, 2, calendar()).due_at == datetime(2026, 6, 8, 11, 0, tzinfo=NY)


def test_holidays_are_closed_days() -> None:
    opened = datetime(2026, 6, 5, 16, 0, tzinfo=NY)
    with_holiday = calendar(holidays=["2026-06-08"])  # the Monday
    assert sla.due_times(opened, 9, with_holiday).due_at == datetime(2026, 6, 9, 17, 0, tzinfo=NY)


def test_business_days_keep_their_length_across_a_daylight_saving_change() -> None:
    # The clocks go forward on Sunday 8 March 2026 in New York.
    opened = datetime(2026, 3, 6, 9, 0, tzinfo=NY)
    due = sla.due_times(opened, 16, calendar()).due_at
    assert due == datetime(2026, 3, 9, 17, 0, tzinfo=NY)
    assert sla.business_seconds_between(opened, due, calendar()) == 16 * 3600


def test_open_time_between_two_instants() -> None:
    cal = calendar()
    start = datetime(2026, 6, 5, 16, 0, tzinfo=NY)
    end = datetime(2026, 6, 8, 10, 30, tzinfo=NY)
    assert sla.business_seconds_between(start, end, cal) == 2.5 * 3600
    assert sla.business_seconds_between(end, start, cal) == -2.5 * 3600


def test_a_hold_gives_back_exactly_the_time_held() -> None:
    opened = datetime(2026, 6, 1, 9, 0, tzinfo=NY)  # Monday
    cal = calendar()
    times = sla.due_times(opened, 16, cal)  # due Tuesday 17:00
    paused = datetime(2026, 6, 1, 13, 0, tzinfo=NY)
    resumed = datetime(2026, 6, 3, 13, 0, tzinfo=NY)  # two business days later
    after = sla.after_hold(times, paused, resumed, cal)
    left_before = sla.business_seconds_between(paused, times.due_at, cal)
    assert sla.business_seconds_between(resumed, after.due_at, cal) == left_before
    assert after.due_at == datetime(2026, 6, 4, 17, 0, tzinfo=NY)


def test_a_hold_on_breached_work_keeps_it_breached_by_as_much() -> None:
    opened = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    times = sla.due_times(opened, 10, None)
    paused = opened + timedelta(hours=12)  # 2 h late already
    after = sla.after_hold(times, paused, paused + timedelta(hours=30), None)
    assert after.due_at == paused + timedelta(hours=30) - timedelta(hours=2)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"monday": [["09:00", "17:00"]]}, "not a weekday"),
        ({"mon": [["17:00", "09:00"]]}, "closes before it opens"),
        ({"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}, "overlap"),
        ({"mon": [["9am", "17:00"]]}, "not a time"),
        ({}, "never open"),
    ],
)
def test_bad_calendars_are_refused_naming_the_problem(
    hours: dict[str, object], message: str
) -> None:
    with pytest.raises(sla.CalendarError, match=message):
        sla.parse_calendar(timezone="UTC", hours=hours)


def test_bad_time_zone_and_holiday_are_refused() -> None:
    with pytest.raises(sla.CalendarError, match="time zone"):
        sla.parse_calendar(timezone="Mars/Olympus", hours=WEEKDAYS_9_TO_5)
    with pytest.raises(sla.CalendarError, match="not a date"):
        sla.parse_calendar(timezone="UTC", hours=WEEKDAYS_9_TO_5, holidays=["next friday"])


def test_an_interval_may_close_at_midnight() -> None:
    cal = sla.parse_calendar(timezone="UTC", hours={"mon": [["20:00", "24:00"]]})
    opened = datetime(2026, 6, 1, 21, 0, tzinfo=UTC)  # Monday
    assert sla.add_business_seconds(opened, 3 * 3600, cal) == datetime(
        2026, 6, 1, 0, 0, tzinfo=UTC
    ) + timedelta(days=1)
    assert date(2026, 6, 1).weekday() == 0
