"""Dispatch data in and out of the API: crews, skills, skill rules, service times, roads."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from geo311.kernel.fields import Count, Id, Instant, LonLat, WallTime

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

CREW_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
CrewCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=CREW_CODE_PATTERN),
    Field(
        description="1-40 ASCII letters, digits, '_', '.', '-' (starting with a letter or digit): "
        "it is a path segment (/crews/{code}) and a header value (Location), so no '/', spaces, "
        "control characters or non-ASCII letters"
    ),
]


class DepotIn(BaseModel):
    """Where a crew's day starts and ends (its yard), WGS84 degrees."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    name: str = Field(default="", max_length=200)


class BreakIn(BaseModel):
    """A break of ``duration_s`` seconds that starts between two wall-clock times."""

    earliest_start: WallTime
    latest_start: WallTime
    duration_s: int = Field(gt=0, le=4 * 3600)

    @model_validator(mode="after")
    def _ordered(self) -> BreakIn:
        if self.latest_start < self.earliest_start:
            raise ValueError("latest_start must not be before earliest_start")
        return self


class MemberIn(BaseModel):
    """A person on the crew's roster; who signs in as the crew is ``CrewIn.staff``."""

    name: str = Field(min_length=1, max_length=200)
    role: str = Field(default="", max_length=100)


class CrewIn(BaseModel):
    """A crew as an admin describes it; the whole crew is replaced on update."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "code": "lighting",
                "name": "Lighting crew",
                "depot": {"lon": -93.17, "lat": 44.965, "name": "Lighting Shop"},
                "shift_start": "07:00",
                "shift_end": "15:30",
                "workdays": [1, 2, 3, 4, 5],
                "skills": ["electrical"],
                "territory": ["1", "2", "3"],
                "breaks": [
                    {"earliest_start": "11:30", "latest_start": "12:30", "duration_s": 1800}
                ],
                "members": [{"name": "A. Rivera", "role": "lead"}],
            }
        }
    )

    code: CrewCode
    name: str = Field(min_length=1, max_length=200)
    depot: DepotIn
    shift_start: WallTime
    shift_end: WallTime
    workdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    capacity: int | None = Field(default=None, ge=0, le=2**31 - 1)
    skills: list[Code] = Field(default_factory=list)
    territory: list[Code] = Field(default_factory=list, description="Ward codes")
    breaks: list[BreakIn] = Field(default_factory=list, max_length=4)
    members: list[MemberIn] = Field(default_factory=list)
    staff: list[Code] | None = Field(
        default=None,
        max_length=200,
        description="Crew users (staff user names) who belong to this crew and act on its "
        "work; each belongs to one crew only, so naming one moves it here. Left out: the "
        "membership stays as it is; []: nobody.",
    )
    active: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> CrewIn:
        if self.shift_end <= self.shift_start:
            raise ValueError("shift_end must be after shift_start (shifts end on the same day)")
        if not set(self.workdays) <= set(range(1, 8)):
            raise ValueError("workdays are ISO weekdays, 1 (Monday) to 7 (Sunday)")
        for b in self.breaks:
            if b.earliest_start < self.shift_start or b.latest_start > self.shift_end:
                raise ValueError("every break must start within the shift")
        return self


class CrewOut(CrewIn):
    id: int
    version: int
    updated_at: datetime
    staff: list[str] = Field(default_factory=list)


class StaffCrewIn(BaseModel):
    """The crew a crew user belongs to (its code), or null for none."""

    crew: Code | None


class StaffCrewOut(BaseModel):
    name: str
    role: str
    crew: str | None


class SkillIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class SkillOut(BaseModel):
    code: str
    name: str


class SkillRuleIn(BaseModel):
    """Work of this category and/or asset type (either may be left out, not both) needs a skill."""

    category_code: Code | None = None
    asset_type: Code | None = None
    skill_code: Code

    @model_validator(mode="after")
    def _matches_something(self) -> SkillRuleIn:
        if self.category_code is None and self.asset_type is None:
            raise ValueError("a rule names a category_code, an asset_type, or both")
        return self


class SkillRuleOut(SkillRuleIn):
    id: int


class ServiceTimeIn(BaseModel):
    """Time on site for a category's jobs, and the hours its work may start in (both or
    neither; e.g. a school street only while school is out)."""

    service_s: int = Field(ge=0, le=24 * 3600)
    access_start: WallTime | None = None
    access_end: WallTime | None = None
    demand: int = Field(
        default=0, ge=0, le=10_000, description="Units of a crew vehicle's capacity a job takes"
    )

    @model_validator(mode="after")
    def _whole(self) -> ServiceTimeIn:
        if (self.access_start is None) != (self.access_end is None):
            raise ValueError("give both access_start and access_end, or neither")
        if self.access_start and self.access_end and self.access_end <= self.access_start:
            raise ValueError("access_end must be after access_start")
        return self


class ServiceTimeOut(BaseModel):
    category_code: str
    service_s: int
    access_start: WallTime | None = None
    access_end: WallTime | None = None
    demand: int = 0


class RoadNetworkOut(BaseModel):
    loaded: bool
    source: str | None = None
    vertices: int = 0
    edges: int = 0
    routable_edges: int = 0
    max_speed_kmh: float | None = None
    loaded_at: datetime | None = None
    matrix_provider: str = Field(description="road_network or straight_line")


# --- day plans --------------------------------------------------------------------------------


class PlanIn(BaseModel):
    """Plan a day afresh; ``plan_version`` (optional) refuses to replace a plan you have not
    seen."""

    plan_version: Count | None = None


class MoveIn(BaseModel):
    """Move work orders to a crew (its code), or back to the dispatcher's queue (null)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"plan_version": 3, "work_order_ids": [101, 102], "to_crew": "paving-2"}
        }
    )

    plan_version: Count = Field(description="The version of the plan you are looking at")
    work_order_ids: list[Id] = Field(min_length=1, max_length=500)
    to_crew: Code | None = None
    reason: str | None = Field(default=None, max_length=1000)


class LockIn(BaseModel):
    plan_version: Count
    locked: bool = True


class ReplanIn(BaseModel):
    plan_version: Count
    crews: list[Code] = Field(min_length=1, max_length=200)


class StopOut(BaseModel):
    seq: int
    work_order_id: int
    incident_id: int
    category: str
    status: str
    location: dict[str, object] = Field(description="GeoJSON Point")
    eta: datetime = Field(description="When the crew arrives")
    start: datetime = Field(description="When work starts (after waiting for a window)")
    end: datetime
    locked: bool
    due_at: datetime


class BreakOut(BaseModel):
    start: datetime
    end: datetime


class RouteOut(BaseModel):
    crew: str
    crew_name: str
    depart: datetime
    back: datetime
    travel_s: int
    distance_m: int | None
    breaks: list[BreakOut]
    line: dict[str, object] | None = Field(description="GeoJSON LineString: the way driven")
    stops: list[StopOut]


class LeftOutOut(BaseModel):
    work_order_id: int
    incident_id: int
    category: str
    reason: str
    detail: str
    due_at: datetime


class PlanOut(BaseModel):
    day: date
    version: int
    engine: str
    matrix_provider: str
    matrix_s: float
    solve_s: float
    planned_by: str
    updated_at: datetime
    routes: list[RouteOut]
    left_out: list[LeftOutOut]


class AppointmentIn(BaseModel):
    """When the work must start: between ``start`` and ``end`` (with a UTC offset)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"start": "2026-06-01T09:00:00-05:00", "end": "2026-06-01T11:00:00-05:00"}
        }
    )

    start: Instant
    end: Instant


class AppointmentOut(BaseModel):
    work_order_id: int
    start: datetime | None
    end: datetime | None


class QueuedWorkOrderOut(BaseModel):
    """A work order waiting in the dispatcher's queue, and why no crew has it."""

    work_order_id: int
    incident_id: int
    status: str
    category_code: str
    category: str
    ward: str | None = Field(description="The ward's code; null: the job is in no ward")
    location: LonLat = Field(description="[lon, lat]")
    due_at: datetime
    sla_state: str = Field(description="on_track, at_risk or breached")
    reason: str = Field(
        description="no_skill, no_territory, no_ward, not_working (the rules), or dispatcher "
        "(a dispatcher took it off every crew)"
    )
    detail: str = Field(description="What is missing, in words a dispatcher acts on")
    skills: list[str] = Field(description="The skills the work needs")
    queued_by: str
    queued_at: datetime


class QueueAssignOut(BaseModel):
    """What trying the rules again on the queue and the unassigned backlog did."""

    examined: int = Field(description="Work orders the rules looked at")
    assigned: dict[str, int] = Field(description="Crew code → work orders it was given")
    still_queued: dict[str, int] = Field(description="Reason → work orders still waiting")
    skipped: int = Field(description="Moved by someone else during the run; left as they are")


class CantDoIn(BaseModel):
    """A crew cannot do a job: why (a code), in its own words too, and the version it saw."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"reason": "no_access", "note": "Gate locked", "expected_version": 4}
        }
    )

    reason: str = Field(max_length=64, description="no_access, needs_equipment, …")
    note: str | None = Field(default=None, max_length=2000)
    expected_version: Count | None = Field(
        default=None, description="The work order's version you saw (or send If-Match)"
    )


class CantDoOut(BaseModel):
    """The job back in the dispatcher's queue."""

    work_order_id: int
    status: str
    version: int
    queue_reason: str
    detail: str


class LatenessOut(BaseModel):
    """A job whose predicted arrival crosses its due time because of the move."""

    work_order_id: int
    due_at: datetime
    eta_before: datetime | None = Field(description="null: on no route of the day before")
    eta_after: datetime | None = Field(description="null: on no route of the day after")


class MovePreviewOut(BaseModel):
    """What a move would do, solved but not stored: the affected crews' routes before and
    after, what it would push off the day, and the SLA breaches it would cause or avoid
    (judged from the predicted arrival)."""

    day: date
    version: int = Field(description="The plan's version, unchanged: commit the move with it")
    before: list[RouteOut]
    after: list[RouteOut]
    left_out: list[LeftOutOut] = Field(description="Work the move would push off the day")
    breaches_caused: list[LatenessOut]
    breaches_avoided: list[LatenessOut]
