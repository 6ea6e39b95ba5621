"""Reading the query string of GET requests and GET servicerequestupdates (pure, no I/O).

Every problem is collected and raised at once, so a client sees all its mistakes in one
``<errors>`` document. An empty parameter behaves exactly like a missing one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from geo311.kernel.errors import FieldError, ValidationFailed
from geo311.kernel.fields import BIGINT_MAX, instant_in_range

STATUSES = ("open", "closed")
_TRUE = ("true", "1", "yes")
# A '+' in an offset that a client forgot to percent-encode arrives as a space.
_SPACE_OFFSET = re.compile(r" (\d\d:?\d\d)$")
# RFC 3339 lets a space stand between date and time ("2026-12-03 00:00:00-06:00", as the
# chicagorequests client sends it); so does an unencoded '+' in a query string.
_SPACE_SEPARATOR = re.compile(r"^(\d{4}-\d\d-\d\d) +(?=\d\d:)")
_W3C = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$", flags=re.IGNORECASE
)


@dataclass(frozen=True)
class Window:
    """A closed interval of time: both ends are included."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class RequestsQuery:
    """What GET requests asks for. With ``service_request_ids``, every other filter is off."""

    service_request_ids: tuple[str, ...]
    service_codes: tuple[str, ...]
    requested: Window | None
    updated: Window | None
    statuses: frozenset[str]
    paging: Paging
    extensions: bool


@dataclass(frozen=True)
class UpdatesQuery:
    """What GET servicerequestupdates asks for: updates in ``window``, oldest first."""

    window: Window
    service_request_ids: tuple[str, ...]
    paging: Paging


def present(params: Mapping[str, str]) -> dict[str, str]:
    """Return the parameters that have a value: empty ones count as absent."""
    return {k: v.strip() for k, v in params.items() if v.strip()}


def is_true(raw: str | None) -> bool:
    """Return whether a flag like ``extensions`` is switched on."""
    return raw is not None and raw.strip().lower() in _TRUE


def parse_w3c(raw: str, name: str, errors: list[FieldError]) -> datetime | None:
    """Return a W3C date-time with its offset (``Z`` or ``±HH:MM`` is mandatory), or None
    after adding an error. Fractions of a second are accepted, and RFC 3339's space between
    date and time."""
    value = _SPACE_OFFSET.sub(r"+\1", _SPACE_SEPARATOR.sub(r"\1T", raw.strip()))
    parsed: datetime | None = None
    if _W3C.match(value):
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        errors.append(
            FieldError(
                name,
                f"{name} must be a W3C date-time with an offset, like 2010-01-01T00:00:00Z; "
                f"got {raw!r}",
                "invalid_datetime",
            )
        )
        return None
    return parsed


def _window(
    params: Mapping[str, str],
    start_name: str,
    end_name: str,
    *,
    now: datetime | None,
    max_span_days: int,
    errors: list[FieldError],
) -> Window | None:
    """Return the window the two parameters ask for; with neither, the last ``max_span_days``
    before ``now`` (or None when ``now`` is None); with one, ``max_span_days`` from it."""
    span = timedelta(days=max_span_days)
    start = parse_w3c(params[start_name], start_name, errors) if start_name in params else None
    end = parse_w3c(params[end_name], end_name, errors) if end_name in params else None
    if (start_name in params and start is None) or (end_name in params and end is None):
        return None
    start = _in_range(start, start_name, errors)
    end = _in_range(end, end_name, errors)
    if (start_name in params and start is None) or (end_name in params and end is None):
        return None
    if start is None and end is None:
        return None if now is None else Window(now - span, now)
    if start is None:
        assert end is not None
        return Window(end - span, end)
    if end is None:
        return Window(start, start + span)
    if end < start:
        errors.append(FieldError(end_name, f"{end_name} is before {start_name}", "window_reversed"))
        return None
    if end - start > span:
        days = (end - start) / timedelta(days=1)
        errors.append(
            FieldError(
                end_name,
                f"{start_name} to {end_name} spans {days:.1f} days; "
                f"at most {max_span_days} days are allowed",
                "span_too_long",
            )
        )
        return None
    return Window(start, end)


def _in_range(value: datetime | None, name: str, errors: list[FieldError]) -> datetime | None:
    """Return ``value`` if it is a time the database and a span of days can hold, else None
    after adding an error (``9999-12-31T23:00:00-05:00`` once overflowed into a 500)."""
    if value is None:
        return None
    try:
        return instant_in_range(value)
    except ValueError as exc:
        errors.append(FieldError(name, f"{name} {exc}", "out_of_range"))
        return None


def _number(raw: str) -> int | None:
    # ASCII digits only: "²".isdigit() is true but int("²") fails.
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else None


def _paging(
    params: Mapping[str, str], *, default: int, maximum: int, errors: list[FieldError]
) -> Paging:
    page_size = default
    if "page_size" in params:
        raw = params["page_size"]
        size = _number(raw)
        if size is None or not 1 <= size <= maximum:
            errors.append(
                FieldError("page_size", f"page_size must be 1 to {maximum}, not {raw!r}", "invalid")
            )
        else:
            page_size = size
    page = 1
    if "page" in params:
        raw = params["page"]
        # The page's offset, (page - 1) × page_size, must fit the database's bigint.
        last = BIGINT_MAX // page_size
        number = _number(raw)
        if number is None or not 1 <= number <= last:
            errors.append(FieldError("page", f"page must be 1 to {last}, not {raw!r}", "invalid"))
        else:
            page = number
    return Paging(page=page, page_size=page_size)


def _csv(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))


def parse_requests_query(
    params: Mapping[str, str],
    *,
    now: datetime,
    max_span_days: int,
    page_size_default: int,
    page_size_max: int,
) -> RequestsQuery:
    """Return the checked GET requests query, or raise ValidationFailed listing every problem.

    Without dates, requests from the last ``max_span_days`` are listed. With
    ``updated_after``/``updated_before`` (incremental sync) and no start/end date, only the
    update window applies, so an old request updated yesterday is found.
    """
    params = present(params)
    errors: list[FieldError] = []
    extensions = is_true(params.get("extensions"))
    ids = tuple(dict.fromkeys(i.upper() for i in _csv(params.get("service_request_id"))))
    if ids:
        if len(ids) > page_size_max:
            errors.append(
                FieldError(
                    "service_request_id",
                    f"at most {page_size_max} service_request_id values per call",
                    "too_many",
                )
            )
        if errors:
            raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
        return RequestsQuery(
            service_request_ids=ids,
            service_codes=(),
            requested=None,
            updated=None,
            statuses=frozenset(),
            paging=Paging(1, page_size_max),
            extensions=extensions,
        )
    statuses = _csv(params.get("status"))
    for status in statuses:
        if status.lower() not in STATUSES:
            errors.append(
                FieldError("status", f"status must be open or closed, not {status!r}", "invalid")
            )
    sync = "updated_after" in params or "updated_before" in params
    dated = "start_date" in params or "end_date" in params
    requested = _window(
        params,
        "start_date",
        "end_date",
        now=None if sync and not dated else now,
        max_span_days=max_span_days,
        errors=errors,
    )
    updated = (
        _window(
            params,
            "updated_after",
            "updated_before",
            now=now,
            max_span_days=max_span_days,
            errors=errors,
        )
        if sync
        else None
    )
    paging = _paging(params, default=page_size_default, maximum=page_size_max, errors=errors)
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    return RequestsQuery(
        service_request_ids=(),
        service_codes=_csv(params.get("service_code")),
        requested=requested,
        updated=updated,
        statuses=frozenset(s.lower() for s in statuses),
        paging=paging,
        extensions=extensions,
    )


def parse_updates_query(
    params: Mapping[str, str],
    *,
    now: datetime,
    max_span_days: int,
    page_size_default: int,
    page_size_max: int,
) -> UpdatesQuery:
    """Return the checked servicerequestupdates query (``start_date``/``end_date`` bound the
    update time; the last ``max_span_days`` by default), or raise ValidationFailed."""
    params = present(params)
    errors: list[FieldError] = []
    window = _window(
        params, "start_date", "end_date", now=now, max_span_days=max_span_days, errors=errors
    )
    paging = _paging(params, default=page_size_default, maximum=page_size_max, errors=errors)
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    assert window is not None
    return UpdatesQuery(
        window=window,
        service_request_ids=tuple(
            dict.fromkeys(i.upper() for i in _csv(params.get("service_request_id")))
        ),
        paging=paging,
    )
