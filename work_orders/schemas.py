"""What the work-order API takes and sends back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from geo311.kernel.fields import LonLat


class TransitionIn(BaseModel):
    """A status change."""

    to: str = Field(description="The new status, e.g. triaged, assigned, scheduled, cancelled")
    reason: str | None = Field(default=None, description="Why; required for hold and cancel")
    expected_version: int | None = Field(
        default=None,
        description="The version you last saw (or send If-Match); a newer one gives 409",
    )


class HoldIn(BaseModel):
    reason: str = Field(min_length=1, description="Why the work waits (parts, permit, …)")
    expected_version: int | None = None


class ResumeIn(BaseModel):
    reason: str | None = None
    expected_version: int | None = None


class TransferIn(BaseModel):
    department: str = Field(description="The receiving department's or agency's queue")
    reason: str = Field(min_length=1)
    expected_version: int | None = None


class WorkOrderOut(BaseModel):
    """A work order with its SLA state as the database computes it."""

    id: int
    incident_id: int
    status: str
    version: int
    department: str
    crew_id: int | None
    category: str | None = None
    location: LonLat | None = Field(default=None, description="[lon, lat]")
    opened_at: datetime
    due_at: datetime
    at_risk_at: datetime
    sla_state: str | None = Field(
        default=None, description="on_track, at_risk, breached, met or cancelled"
    )
    paused_at: datetime | None
    hold_reason: str | None
    resolved_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    resolution_code: str | None
    completion_note: str | None
    after_photo_url: str | None = None


class IncidentOut(BaseModel):
    id: int
    status: str
    version: int
    category: str
    opened_at: datetime
    due_at: datetime | None
    closed_at: datetime | None
    work_order: WorkOrderOut | None


class SlaSummaryOut(BaseModel):
    department: str
    open: int
    on_hold: int
    at_risk: int
    breached_open: int
    breached_done: int
    met: int


class AnswerIn(BaseModel):
    token: str
    answer: Literal["fixed", "not_fixed"]


class AnswerOut(BaseModel):
    outcome: Literal[
        "thanks_fixed", "thanks_not_fixed", "already", "outdated", "fixed_but_reopened"
    ]
    incident_id: int


class CalendarIn(BaseModel):
    name: str
    timezone: str = Field(description="IANA zone, e.g. America/New_York")
    hours: dict[str, list[tuple[str, str]]] = Field(
        description='Weekly opening hours, e.g. {"mon": [["08:00", "17:00"]]}'
    )
    holidays: list[str] = Field(default=[], description="Closed days, YYYY-MM-DD")


class CategoryCalendarIn(BaseModel):
    calendar: str | None = Field(description="A calendar code, or null for wall-clock hours")
