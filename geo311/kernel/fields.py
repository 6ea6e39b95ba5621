"""Field types for what callers send: numbers, days and times bounded to what the database and
Python can hold, so an out-of-range value is a 422 naming the field, never an overflow deep
in a query (a 500).

Plain pydantic types (no web framework): FastAPI path and query parameters, request models and
the CLI's load files all use them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, WithJsonSchema

BIGINT_MAX = 2**63 - 1
"""The largest PostgreSQL ``bigint`` (and ``bigserial`` id)."""

Id = Annotated[int, Interval(ge=1, le=BIGINT_MAX)]
"""A row id: 1 to the largest bigint."""

Count = Annotated[int, Interval(ge=0, le=BIGINT_MAX)]
"""A number of rows (an offset, a version): 0 to the largest bigint."""

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)
"""Days and instants callers may name. Far wider than any 311 history or plan, and far enough
inside Python's years 1-9999 that a time zone, a span of days or a planning horizon added to
them cannot overflow."""

_EARLIEST = datetime.combine(FIRST_DAY, time(), tzinfo=UTC)
_LATEST = datetime.combine(LAST_DAY, time.max, tzinfo=UTC)


def day_in_range(value: date) -> date:
    """Return ``value`` if it lies within FIRST_DAY..LAST_DAY, else raise ValueError."""
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return value


def instant_in_range(value: datetime) -> datetime:
    """Return ``value`` (aware) if it lies within FIRST_DAY..LAST_DAY in UTC, else raise
    ValueError. Checked on the calendar first, so an offset cannot overflow the check itself."""
    day_in_range(value.date())
    if value.tzinfo is not None and not _EARLIEST <= value <= _LATEST:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY} (UTC)")
    return value


Day = Annotated[date, AfterValidator(day_in_range)]
"""A calendar day between FIRST_DAY and LAST_DAY."""

Instant = Annotated[datetime, AfterValidator(instant_in_range)]
"""A date-time between FIRST_DAY and LAST_DAY."""


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError(
            "a wall-clock time in the jurisdiction's time zone, without a UTC offset (e.g. 07:30)"
        )
    return value


WALL_TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$"

WallTime = Annotated[
    time,
    AfterValidator(_wall_clock),
    # JSON Schema's "time" format is RFC 3339's full-time, which requires an offset; these
    # times are local wall-clock times (a shift starts at 07:00 whatever the season), so the
    # document says what they are with a pattern instead.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": WALL_TIME_PATTERN,
            "description": "Wall-clock time HH:MM[:SS] in the jurisdiction's time zone",
            "examples": ["07:30"],
        }
    ),
]
"""A time of day on the wall clock, with no UTC offset (refused: a shift does not move with
daylight saving, and an odd offset cannot be placed on a day)."""


LonLat = Annotated[
    tuple[float, float],
    # pydantic writes a pair as prefixItems, which some OpenAPI 3.1 tools still read as the
    # old tuple-form "items" array; an array of exactly two numbers says the same to all.
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 2,
            "maxItems": 2,
            "description": "[lon, lat], WGS84 degrees",
        }
    ),
]
"""A point as [lon, lat]."""
