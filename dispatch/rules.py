"""Which crew gets a job: the assignment rules, evaluated in one place, with no I/O.

The rules are data (``SkillRule`` rows and crews' territories), never a code branch per city:

1. **Skill** — the job needs the skills named by the most specific matching skill rules:
   rules on both its category and its asset type, else on its category alone, else on its
   asset type alone; no matching rule, no skill needed. A crew must hold every one.
2. **Territory** — the crew covers the job's ward (wards may be shared by several crews).
3. **Availability** — the crew is active and works on a day the job can be done: a working
   day from today up to the due date (a job due on a Saturday is for the crew's Friday, not
   for nobody), or, for a job already overdue, its next working day. Without ``today`` only
   the due date itself counts.
4. **Load** — of the crews left, the least loaded over those days (seconds of work booked
   that is due by then, over the seconds of the crew's shifts on those days), then the crew
   that can start soonest, ties going to the lower crew code so the outcome never depends on
   order.

No crew left at any step → no crew, with the reason at the step that emptied the list, so the
job waits in the dispatcher's queue with a sentence a dispatcher can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Reason = Literal["no_skill", "no_territory", "no_ward", "not_working"]

# How far ahead an overdue job looks for a crew's next working day (a crew that works on no
# day of a whole week is not working).
LOOKAHEAD_DAYS = 7


@dataclass(frozen=True)
class SkillRule:
    """Work of ``category_code`` and/or ``asset_type`` (None: any) needs ``skill_code``."""

    category_code: str | None
    asset_type: str | None
    skill_code: str


@dataclass(frozen=True)
class CrewFacts:
    """What the rules need to know of a crew.

    ``workdays`` are ISO weekdays; ``shift_s`` is the length of its shift, against which its
    load (seconds of work already booked on the due date) is weighed.
    """

    id: int
    code: str
    skills: frozenset[str]
    territory: frozenset[str]
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    shift_s: int = 8 * 3600
    active: bool = True

    def works_on(self, day: date) -> bool:
        return self.active and day.isoweekday() in self.workdays

    def working_days(self, start: date, end: date) -> list[date]:
        """Return the days from ``start`` to ``end`` (both included) the crew works on."""
        if not self.active or end < start:
            return []
        span = (end - start).days + 1
        days = (start + timedelta(days=k) for k in range(span))
        return [d for d in days if d.isoweekday() in self.workdays]

    def next_working_day(self, start: date) -> date | None:
        """Return the first day from ``start`` on that the crew works (within a week), or None."""
        days = self.working_days(start, start + timedelta(days=LOOKAHEAD_DAYS - 1))
        return days[0] if days else None


@dataclass(frozen=True)
class JobFacts:
    """What the rules need to know of a job: what, where (ward code), when it is due, and
    ``today`` — the first day it can be done (None: only the due date counts).

    ``past_due``: its due time has passed (a job due today at 02:00 is overdue at 10:00,
    which its dates alone do not show).
    """

    category_code: str
    asset_type: str | None
    ward_code: str | None
    due_on: date | None
    today: date | None = None
    past_due: bool = False

    @property
    def overdue(self) -> bool:
        if self.today is None or self.due_on is None:
            return False
        return self.past_due or self.due_on < self.today


@dataclass(frozen=True)
class Availability:
    """When a crew can do a job: the first such day and how many of its shifts fall in the
    job's window (its load is weighed against those); ``first_day`` None: no dates given."""

    first_day: date | None
    shifts: int


def availability(crew: CrewFacts, job: JobFacts) -> Availability | None:
    """Return when ``crew`` can do ``job``, or None if it cannot in time.

    The window runs from ``job.today`` (or the due date) to the due date; an overdue job's
    window is the crew's next working day. A job with no dates: any active crew, one shift.
    """
    if not crew.active:
        return None
    start = job.today or job.due_on
    if start is None:
        return Availability(None, 1)
    if job.overdue:
        day = crew.next_working_day(start)
        return Availability(day, 1) if day else None
    end = job.due_on or start
    days = crew.working_days(start, end)
    return Availability(days[0], len(days)) if days else None


@dataclass(frozen=True)
class Choice:
    """The outcome: a crew, or none and why; ``skills`` are what the job was found to need."""

    crew_id: int | None
    crew_code: str | None
    skills: frozenset[str]
    reason: Reason | None
    detail: str
    candidates: tuple[str, ...]  # codes of the eligible crews, least loaded first
    day: date | None = None  # the first day the chosen crew can do the job


def required_skills(
    rules: Iterable[SkillRule], *, category_code: str, asset_type: str | None
) -> frozenset[str]:
    """Return the skills a job of this category (snapped to this asset type, if any) needs."""
    both: set[str] = set()
    category: set[str] = set()
    asset: set[str] = set()
    for rule in rules:
        cat_ok = rule.category_code is None or rule.category_code == category_code
        asset_ok = rule.asset_type is None or rule.asset_type == asset_type
        if not (cat_ok and asset_ok):
            continue
        if rule.category_code is not None and rule.asset_type is not None:
            both.add(rule.skill_code)
        elif rule.category_code is not None:
            category.add(rule.skill_code)
        elif asset_type is not None:
            asset.add(rule.skill_code)
    return frozenset(both or category or asset)


def load_ratio(crew: CrewFacts, load_s: Mapping[int, float], *, shifts: int = 1) -> float:
    """Return the crew's booked share of ``shifts`` of its shifts (0 = idle, 1 = full,
    >1 = overbooked)."""
    return load_s.get(crew.id, 0.0) / max(crew.shift_s * shifts, 1)


def _window(job: JobFacts) -> str:
    if job.due_on is None:
        return "on any day"
    if job.overdue:
        return f"in the week from {job.today:%a %Y-%m-%d} (it was due {job.due_on:%a %Y-%m-%d})"
    if job.today is None or job.today == job.due_on:
        return f"on {job.due_on:%a %Y-%m-%d}, when it is due"
    return f"between {job.today:%a %Y-%m-%d} and {job.due_on:%a %Y-%m-%d}, when it is due"


def choose_crew(
    job: JobFacts,
    crews: Sequence[CrewFacts],
    rules: Iterable[SkillRule],
    *,
    load_s: Mapping[int, float] | None = None,
) -> Choice:
    """Return the crew the rules give ``job`` to, or no crew with the reason.

    ``load_s`` maps crew id → seconds of work booked for the crew that is due by the job's
    due date (for an overdue job: by today); it is weighed against the crew's shifts in the
    job's window (see :func:`availability`).
    """
    loads = load_s or {}
    skills = required_skills(rules, category_code=job.category_code, asset_type=job.asset_type)
    needs = ", ".join(sorted(skills))

    def none(reason: Reason, detail: str) -> Choice:
        return Choice(None, None, skills, reason, detail, ())

    skilled = [c for c in crews if skills <= c.skills]
    if not skilled:
        return none("no_skill", f"no crew has the skills this work needs ({needs})")
    if job.ward_code is None:
        return none("no_ward", "the job is in no ward, so no crew's territory covers it")
    local = [c for c in skilled if job.ward_code in c.territory]
    if not local:
        who = ", ".join(sorted(c.code for c in skilled))
        return none(
            "no_territory",
            f"ward {job.ward_code} is in no territory of the crews with the skills ({who})",
        )
    free = [(c, a) for c in local if (a := availability(c, job)) is not None]
    if not free:
        who = ", ".join(sorted(c.code for c in local))
        active = [c for c in local if c.active]
        if not active:
            return none("not_working", f"every eligible crew ({who}) is inactive")
        detail = f"no eligible crew ({who}) works {_window(job)}"
        after = job.due_on or job.today
        if after is not None and not job.overdue:
            later = sorted(
                (d, c.code)
                for c in active
                if (d := c.next_working_day(after + timedelta(days=1))) is not None
            )
            if later:
                detail += f"; the first to work after is {later[0][1]} on {later[0][0]:%a %Y-%m-%d}"
        return none("not_working", detail)
    ranked = sorted(
        free,
        key=lambda ca: (
            load_ratio(ca[0], loads, shifts=ca[1].shifts),
            ca[1].first_day or date.min,
            ca[0].code,
        ),
    )
    best, when = ranked[0]
    detail = (
        f"least loaded of {len(ranked)} eligible crews"
        if len(ranked) > 1
        else "the only eligible crew"
    )
    if when.first_day is not None:
        lead = "overdue, so for its next working day" if job.overdue else "first working day"
        detail += f"; {lead} {when.first_day:%a %Y-%m-%d}"
    return Choice(
        best.id, best.code, skills, None, detail, tuple(c.code for c, _ in ranked), when.first_day
    )
