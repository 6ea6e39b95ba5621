"""Which crew gets a job: the assignment rules, evaluated in one place, with no I/O.

The rules are data (``SkillRule`` rows and crews' territories), never a code branch per city:

1. **Skill** — the job needs the skills named by the most specific matching skill rules:
   rules on both its category and its asset type, else on its category alone, else on its
   asset type alone; no matching rule, no skill needed. A crew must hold every one.
2. **Territory** — the crew covers the job's ward (wards may be shared by several crews).
3. **Availability** — the crew is active and works on the due date.
4. **Load** — of the crews left, the least loaded on the due date (booked seconds over the
   shift's seconds), ties going to the lower crew code so the outcome never depends on order.

No crew left at any step → no crew, with the reason at the step that emptied the list, so the
job waits in the dispatcher's queue with a sentence a dispatcher can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

Reason = Literal["no_skill", "no_territory", "no_ward", "not_working"]


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


@dataclass(frozen=True)
class JobFacts:
    """What the rules need to know of a job: what, where (ward code), and when it is due."""

    category_code: str
    asset_type: str | None
    ward_code: str | None
    due_on: date | None


@dataclass(frozen=True)
class Choice:
    """The outcome: a crew, or none and why; ``skills`` are what the job was found to need."""

    crew_id: int | None
    crew_code: str | None
    skills: frozenset[str]
    reason: Reason | None
    detail: str
    candidates: tuple[str, ...]  # codes of the eligible crews, least loaded first


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


def load_ratio(crew: CrewFacts, load_s: Mapping[int, float]) -> float:
    """Return the crew's booked share of its shift (0 = idle, 1 = full, >1 = overbooked)."""
    return load_s.get(crew.id, 0.0) / max(crew.shift_s, 1)


def choose_crew(
    job: JobFacts,
    crews: Sequence[CrewFacts],
    rules: Iterable[SkillRule],
    *,
    load_s: Mapping[int, float] | None = None,
) -> Choice:
    """Return the crew the rules give ``job`` to, or no crew with the reason.

    ``load_s`` maps crew id → seconds of work already booked for the job's due date.
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
    working = (
        [c for c in local if c.works_on(job.due_on)]
        if job.due_on
        else [c for c in local if c.active]
    )
    if not working:
        when = job.due_on.isoformat() if job.due_on else "any day"
        return none("not_working", f"no eligible crew works on {when}")
    ranked = sorted(working, key=lambda c: (load_ratio(c, loads), c.code))
    best = ranked[0]
    detail = (
        f"least loaded of {len(ranked)} eligible crew(s)"
        if len(ranked) > 1
        else ("the only eligible crew")
    )
    return Choice(best.id, best.code, skills, None, detail, tuple(c.code for c in ranked))
