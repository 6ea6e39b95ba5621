"""Service categories: what a resident can report, and what work orders keep about each (its
group, asset type, SLA and the business calendar it counts in, the dedup rule's settings).

The one home of the category row. What other domains keep about a category lives with them
(dispatch: time on site and skills; Open311: the service definition's questions); a whole
category across domains is defined in one step by ``geo311.flows.categories``. Plain
functions, session first; they flush, the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from layers.models import AssetType
from work_orders import sla
from work_orders.models import BusinessCalendar, ServiceCategory

# --- reading ------------------------------------------------------------------------------


def get_category(session: Session, *, jurisdiction_id: int, code: str) -> ServiceCategory | None:
    """Return the active category ``code`` of the jurisdiction, or None."""
    category = session.get(ServiceCategory, (jurisdiction_id, code))
    if category is None or not category.active:
        return None
    return category


def list_categories(session: Session, *, jurisdiction_id: int) -> list[ServiceCategory]:
    """Return the jurisdiction's active categories, by group then name."""
    return list(
        session.scalars(
            select(ServiceCategory)
            .where(ServiceCategory.jurisdiction_id == jurisdiction_id, ServiceCategory.active)
            .order_by(ServiceCategory.group_code, ServiceCategory.name)
        )
    )


def category_calendar(
    session: Session, *, jurisdiction_id: int, category_code: str
) -> sla.BusinessCalendar | None:
    """Return the business calendar a category's SLA counts in, or None (wall-clock hours)."""
    row = session.execute(
        select(BusinessCalendar)
        .join(
            ServiceCategory,
            and_(
                ServiceCategory.jurisdiction_id == BusinessCalendar.jurisdiction_id,
                ServiceCategory.calendar_code == BusinessCalendar.code,
            ),
        )
        .where(
            ServiceCategory.jurisdiction_id == jurisdiction_id,
            ServiceCategory.code == category_code,
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return sla.parse_calendar(timezone=row.timezone, hours=row.hours, holidays=row.holidays)


def put_calendar(
    session: Session,
    *,
    jurisdiction_id: int,
    code: str,
    name: str,
    timezone: str,
    hours: Mapping[str, Any],
    holidays: Sequence[str],
) -> BusinessCalendar:
    """Return the business calendar ``code``, created or replaced; raise ValidationFailed if
    the hours, holidays or time zone are not usable."""
    try:
        parsed = sla.parse_calendar(timezone=timezone, hours=hours, holidays=holidays)
    except sla.CalendarError as exc:
        raise ValidationFailed(str(exc), errors=[FieldError("hours", str(exc))]) from exc
    calendar = session.get(BusinessCalendar, (jurisdiction_id, code))
    if calendar is None:
        calendar = BusinessCalendar(jurisdiction_id=jurisdiction_id, code=code)
        session.add(calendar)
    calendar.name = name
    calendar.timezone = timezone
    calendar.hours = {key: [list(pair) for pair in spans] for key, spans in hours.items()}
    calendar.holidays = sorted(parsed.holidays)
    session.flush()
    return calendar


def set_category_calendar(
    session: Session, *, jurisdiction_id: int, category_code: str, calendar_code: str | None
) -> ServiceCategory:
    """Return the category, now counting its SLA in ``calendar_code`` (None: wall-clock).

    Applies to work opened from now on; open work keeps the due time it was given.
    """
    category = session.get(ServiceCategory, (jurisdiction_id, category_code))
    if category is None:
        raise NotFound(f"There is no service category {category_code!r}.")
    if (
        calendar_code is not None
        and session.get(BusinessCalendar, (jurisdiction_id, calendar_code)) is None
    ):
        raise NotFound(f"There is no business calendar {calendar_code!r}.")
    category.calendar_code = calendar_code
    session.flush()
    return category


# --- writing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryFields:
    """What work orders keep about a category (units in the names; None: the default)."""

    name: str
    group_code: str
    sla_hours: float
    description: str = ""
    asset_type: str | None = None
    calendar_code: str | None = None
    snap_radius_m: float = 30.0
    active: bool = True
    dedup_enabled: bool = True
    dedup_radius_m: float = 50.0
    dedup_threshold: float | None = None
    dedup_open_window_h: float | None = None
    dedup_reopen_window_h: float | None = None


def check_category(
    session: Session, *, jurisdiction_id: int, fields: CategoryFields, prefix: str = ""
) -> list[FieldError]:
    """Return what is wrong with ``fields`` for this jurisdiction (empty: nothing): an asset
    type or calendar that does not exist, a value out of range."""
    errors: list[FieldError] = []
    if not fields.name.strip():
        errors.append(FieldError(f"{prefix}name", "must not be empty", "missing"))
    if not fields.group_code.strip():
        errors.append(FieldError(f"{prefix}group", "must not be empty", "missing"))
    if not fields.sla_hours > 0:
        errors.append(FieldError(f"{prefix}sla_hours", "must be more than 0 hours", "range"))
    for name, value in (
        ("dedup.radius_m", fields.dedup_radius_m),
        ("snap_radius_m", fields.snap_radius_m),
    ):
        if value < 0:
            errors.append(FieldError(f"{prefix}{name}", "must not be negative", "range"))
    if fields.asset_type is not None and (
        session.get(AssetType, (jurisdiction_id, fields.asset_type)) is None
    ):
        errors.append(
            FieldError(
                f"{prefix}asset_type",
                f"there is no asset type {fields.asset_type!r} (load it with `layers assets`)",
                "unknown",
            )
        )
    if fields.calendar_code is not None and (
        session.get(BusinessCalendar, (jurisdiction_id, fields.calendar_code)) is None
    ):
        errors.append(
            FieldError(
                f"{prefix}calendar",
                f"there is no business calendar {fields.calendar_code!r}",
                "unknown",
            )
        )
    return errors


def put_category(
    session: Session, *, jurisdiction_id: int, code: str, fields: CategoryFields
) -> tuple[ServiceCategory, bool]:
    """Return the category ``code`` created or updated to ``fields``, and whether it is new.

    Raises ValidationFailed naming every bad field (nothing is written then). Work already
    open keeps the due time it was given.
    """
    errors = check_category(session, jurisdiction_id=jurisdiction_id, fields=fields)
    if errors:
        raise ValidationFailed(f"Category {code!r} cannot be stored.", errors=errors)
    category = session.get(ServiceCategory, (jurisdiction_id, code))
    created = category is None
    if category is None:
        category = ServiceCategory(jurisdiction_id=jurisdiction_id, code=code)
        session.add(category)
    category.name = fields.name
    category.description = fields.description
    category.group_code = fields.group_code
    category.asset_type = fields.asset_type
    category.calendar_code = fields.calendar_code
    category.sla_hours = fields.sla_hours
    category.snap_radius_m = fields.snap_radius_m
    category.active = fields.active
    category.dedup_enabled = fields.dedup_enabled
    category.dedup_radius_m = fields.dedup_radius_m
    category.dedup_threshold = fields.dedup_threshold
    category.dedup_open_window_h = fields.dedup_open_window_h
    category.dedup_reopen_window_h = fields.dedup_reopen_window_h
    session.flush()
    return category, created


def fields_of(category: ServiceCategory) -> CategoryFields:
    """Return what work orders keep about ``category``."""
    return CategoryFields(
        name=category.name,
        group_code=category.group_code,
        sla_hours=category.sla_hours,
        description=category.description,
        asset_type=category.asset_type,
        calendar_code=category.calendar_code,
        snap_radius_m=category.snap_radius_m,
        active=category.active,
        dedup_enabled=category.dedup_enabled,
        dedup_radius_m=category.dedup_radius_m,
        dedup_threshold=category.dedup_threshold,
        dedup_open_window_h=category.dedup_open_window_h,
        dedup_reopen_window_h=category.dedup_reopen_window_h,
    )


def all_categories(session: Session, *, jurisdiction_id: int) -> list[ServiceCategory]:
    """Return every category of the jurisdiction, the inactive ones too, by code."""
    return list(
        session.scalars(
            select(ServiceCategory)
            .where(ServiceCategory.jurisdiction_id == jurisdiction_id)
            .order_by(ServiceCategory.code)
        )
    )
