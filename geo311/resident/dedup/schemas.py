"""What the dispatchers' dedup API takes and sends back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from geo311.kernel.fields import Id
from geo311.resident.intake.schemas import PointGeoJSON

Reason = Field(min_length=1, max_length=1000, description="Why: kept in the audit trail")


class MergeIn(BaseModel):
    """Merge incident ``source_incident_id`` into the incident of the URL."""

    model_config = ConfigDict(extra="forbid")

    source_incident_id: Id = Field(description="The incident to fold in (it is cancelled)")
    reason: str = Reason


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Reason


class DedupOut(BaseModel):
    """What duplicate detection decided for a report at intake, and why."""

    decision: Literal["new", "matched", "reopened", "off"]
    score: float | None
    signals: dict[str, Any] = Field(description="The best candidate's signals; which fired")


class IncidentReportOut(BaseModel):
    tracking_id: str
    category: str
    reported_at: datetime
    channel: str
    location: PointGeoJSON
    distance_m: float = Field(description="From the incident's location, metres")
    address: str | None
    asset_id: int | None
    has_photo: bool
    subscribed: bool = Field(description="Its requester hears about this incident")
    matched_report: str | None = Field(description="Tracking id of the report it was matched to")
    dedup: DedupOut | None


class IncidentSummaryOut(BaseModel):
    id: int
    status: str
    category: str
    location: PointGeoJSON
    opened_at: datetime
    closed_at: datetime | None
    report_count: int = Field(description="Reports of this problem (its supporters)")
    subscriber_count: int


class MoveOut(BaseModel):
    """A merge or split, and its undo when there was one."""

    id: int
    kind: Literal["merge", "split"]
    from_incident_id: int
    to_incident_id: int
    reports: list[str] = Field(description="Tracking ids of the reports moved")
    actor: str
    reason: str
    at: datetime
    undone_at: datetime | None
    undone_by: str | None
    undo_reason: str | None


class IncidentReportsOut(BaseModel):
    incident: IncidentSummaryOut
    reports: list[IncidentReportOut]
    moves: list[MoveOut] = Field(description="Merges and splits that touched this incident")
