"""SLA clocks: due times in round-the-clock or business time, and pauses. Pure, no I/O.

A category's SLA is a number of hours. Without a calendar they are wall-clock hours. With a
business calendar (weekly opening hours in the jurisdiction's local time, plus holidays) only
the time the calendar is open counts, so "24 business hours" from Friday 16:00 in an 08:00-17:00
Monday-to-Friday city ends on Wednesday at 16:00.

Every work order keeps two instants, ``due_at`` and ``at_risk_at`` (when the last
``AT_RISK_FRACTION`` of its SLA begins). SQL compares them with the clock to flag work at risk
or breached; holding work moves both later by the business time the hold lasted.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AT_RISK_FRACTION: Final = 0.25
"""Work is at risk during the last quarter of its SLA window."""

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_MAX_DAYS: Final = 3660  # never look further than ten years for open time


class CalendarError(ValueError):
    """A business calendar that cannot be used; the message names the bad part."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly opening hours in local time, and days that are closed.

    ``week`` maps a weekday (0 = Monday) to its opening intervals, sorted and not
    overlapping; a weekday that is missing is closed all day.
    """

    timezone: str
    week: Mapping[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"unknown time zone {self.timezone!r}") from exc
        if not any(self.week.values()):
            raise CalendarError("the calendar is never open: give at least one interval")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Yield the open intervals (aware) from the local day of ``start`` onwards."""
        zone = self.zone
        day = start.astimezone(zone).date()
        for _ in range(_MAX_DAYS):
            if day not in self.holidays:
                for opens, closes in self.week.get(day.weekday(), ()):
                    begin = datetime.combine(day, opens, zone)
                    end = (
                        datetime.combine(day + timedelta(days=1), time(0), zone)
                        if closes == time(0)
                        else datetime.combine(day, closes, zone)
                    )
                    yield begin, end
            day += timedelta(days=1)


def parse_calendar(
    *, timezone: str, hours: Mapping[str, Any], holidays: Iterable[str | date] = ()
) -> BusinessCalendar:
    """Return the calendar described by JSON-like data, or raise CalendarError.

    ``hours`` maps "mon" … "sun" to lists of ["HH:MM", "HH:MM"] intervals ("24:00" closes
    at midnight); ``holidays`` are ISO dates.
    """
    week: dict[int, tuple[tuple[time, time], ...]] = {}
    for key, raw in hours.items():
        if key not in WEEKDAYS:
            raise CalendarError(f"hours: {key!r} is not a weekday; use {', '.join(WEEKDAYS)}")
        if not isinstance(raw, list | tuple):
            raise CalendarError(f"hours.{key} must be a list of [opens, closes] pairs")
        spans: list[tuple[time, time]] = []
        for pair in raw:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise CalendarError(f"hours.{key}: each interval is a pair [opens, closes]")
            opens, closes = (_parse_hhmm(key, v) for v in pair)
            if closes != time(0) and closes <= opens:
                raise CalendarError(f"hours.{key}: {pair[0]}-{pair[1]} closes before it opens")
            spans.append((opens, closes))
        spans.sort()
        for (_, end), (begin, _) in itertools.pairwise(spans):
            if end == time(0) or begin < end:
                raise CalendarError(f"hours.{key}: intervals overlap")
        if spans:
            week[WEEKDAYS.index(key)] = tuple(spans)
    days: set[date] = set()
    for value in holidays:
        try:
            days.add(value if isinstance(value, date) else date.fromisoformat(value))
        except ValueError as exc:
            raise CalendarError(f"holidays: {value!r} is not a date (YYYY-MM-DD)") from exc
    return BusinessCalendar(timezone=timezone, week=week, holidays=frozenset(days))


def _parse_hhmm(day: str, value: object) -> time:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise CalendarError(f"hours.{day}: {value!r} is not a time HH:MM")
    if value == "24:00":
        return time(0)
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def add_business_seconds(
    start: datetime, seconds: float, calendar: BusinessCalendar | None
) -> datetime:
    """Return the instant ``seconds`` of open time after ``start`` (wall time if no calendar).

    ``seconds`` must not be negative. Counting starts at ``start`` or, if the calendar is
    closed then, at its next opening.
    """
    _check_aware(start)
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    if calendar is None or seconds == 0:
        return start + timedelta(seconds=seconds)
    remaining = seconds
    for begin, end in calendar.intervals(start):
        if end <= start:
            continue
        segment_start = max(begin, start)
        available = (end - segment_start).total_seconds()
        if remaining <= available:
            return segment_start + timedelta(seconds=remaining)
        remaining -= available
    raise CalendarError("the calendar has no open time in the next ten years")


def business_seconds_between(
    start: datetime, end: datetime, calendar: BusinessCalendar | None
) -> float:
    """Return the open time from ``start`` to ``end`` in seconds (negative if ``end`` is
    earlier); wall time if no calendar."""
    _check_aware(start)
    _check_aware(end)
    if end < start:
        return -business_seconds_between(end, start, calendar)
    if calendar is None:
        return (end - start).total_seconds()
    total = 0.0
    for begin, stop in calendar.intervals(start):
        if begin >= end:
            break
        overlap = (min(stop, end) - max(begin, start)).total_seconds()
        if overlap > 0:
            total += overlap
    return total


@dataclass(frozen=True)
class SlaTimes:
    """When work is due, and when it becomes at risk of missing that."""

    due_at: datetime
    at_risk_at: datetime


def due_times(opened_at: datetime, sla_hours: float, calendar: BusinessCalendar | None) -> SlaTimes:
    """Return the due and at-risk instants of work opened at ``opened_at``."""
    if sla_hours <= 0:
        raise ValueError(f"sla_hours must be positive, got {sla_hours}")
    total_s = sla_hours * 3600.0
    return SlaTimes(
        due_at=add_business_seconds(opened_at, total_s, calendar),
        at_risk_at=add_business_seconds(opened_at, total_s * (1 - AT_RISK_FRACTION), calendar),
    )


def after_hold(
    times: SlaTimes, paused_at: datetime, resumed_at: datetime, calendar: BusinessCalendar | None
) -> SlaTimes:
    """Return the SLA instants moved later by the open time that passed while on hold.

    The work then has, after ``resumed_at``, exactly the open time it had left at
    ``paused_at`` (none, if it was already breached: it stays breached by as much).
    """
    held_s = max(0.0, business_seconds_between(paused_at, resumed_at, calendar))
    return SlaTimes(
        due_at=add_business_seconds(times.due_at, held_s, calendar),
        at_risk_at=add_business_seconds(times.at_risk_at, held_s, calendar),
    )


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
