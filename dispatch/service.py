"""Crews, skills, skill rules and service times: plain functions, the session first.

Services flush, never commit: the caller (a route, the CLI, a loader) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from geoalchemy2 import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch import rules
from dispatch.errors import CrewCodeTaken, SkillInUse, StaleCrew, UnknownCrew, UnknownSkill
from dispatch.models import (
    CategoryServiceTime,
    Crew,
    CrewBreak,
    CrewMember,
    CrewSkill,
    CrewTerritory,
    Skill,
    SkillRule,
)
from dispatch.schemas import (
    BreakIn,
    CrewIn,
    CrewOut,
    DepotIn,
    MemberIn,
    SkillRuleIn,
    SkillRuleOut,
)
from geo311.kernel.auth import service as auth_service
from geo311.kernel.auth.models import StaffUser
from geo311.kernel.errors import FieldError, NotFound, ValidationFailed
from layers.models import AssetType, Jurisdiction, Ward
from work_orders.models import ServiceCategory

# --- skills -----------------------------------------------------------------------------------


def list_skills(session: Session, *, jurisdiction_id: int) -> list[Skill]:
    """Return the jurisdiction's skills by code."""
    return list(
        session.scalars(
            select(Skill).where(Skill.jurisdiction_id == jurisdiction_id).order_by(Skill.code)
        )
    )


def put_skill(session: Session, *, jurisdiction_id: int, code: str, name: str) -> Skill:
    """Return the skill ``code``, created or renamed."""
    skill = session.get(Skill, (jurisdiction_id, code))
    if skill is None:
        skill = Skill(jurisdiction_id=jurisdiction_id, code=code, name=name)
        session.add(skill)
    else:
        skill.name = name
    session.flush()
    return skill


def delete_skill(session: Session, *, jurisdiction_id: int, code: str) -> None:
    """Delete a skill no crew holds and no rule names; SkillInUse otherwise."""
    skill = session.get(Skill, (jurisdiction_id, code))
    if skill is None:
        raise NotFound(f"No skill {code!r}.")
    held = session.scalar(
        select(
            exists().where(
                CrewSkill.jurisdiction_id == jurisdiction_id, CrewSkill.skill_code == code
            )
            | exists().where(
                SkillRule.jurisdiction_id == jurisdiction_id, SkillRule.skill_code == code
            )
        )
    )
    if held:
        raise SkillInUse(
            f"Skill {code!r} is held by a crew or named by a rule; remove those first."
        )
    session.delete(skill)
    session.flush()


def _check_skills(session: Session, jurisdiction_id: int, codes: Iterable[str], field: str) -> None:
    wanted = set(codes)
    if not wanted:
        return
    known = set(
        session.scalars(
            select(Skill.code).where(
                Skill.jurisdiction_id == jurisdiction_id, Skill.code.in_(wanted)
            )
        )
    )
    unknown = sorted(wanted - known)
    if unknown:
        raise UnknownSkill(
            f"Unknown skill(s): {', '.join(unknown)}. Define them first (PUT /api/v1/skills/…).",
            errors=[FieldError(field, f"unknown skill {c!r}", "unknown_skill") for c in unknown],
        )


# --- crews ------------------------------------------------------------------------------------


def _crew_row(session: Session, jurisdiction_id: int, code: str) -> Crew:
    crew = session.scalar(
        select(Crew).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == code)
    )
    if crew is None:
        raise UnknownCrew(f"No crew {code!r}.")
    return crew


def _check_wards(session: Session, jurisdiction_id: int, codes: Iterable[str]) -> None:
    wanted = set(codes)
    if not wanted:
        return
    known = set(
        session.scalars(
            select(Ward.code)
            .where(Ward.jurisdiction_id == jurisdiction_id, Ward.code.in_(wanted))
            .distinct()
        )
    )
    unknown = sorted(wanted - known)
    if unknown:
        raise ValidationFailed(
            f"Unknown ward code(s) in the territory: {', '.join(unknown)}.",
            errors=[FieldError("territory", f"no ward {c!r}", "unknown_ward") for c in unknown],
        )


def _write_parts(session: Session, crew: Crew, data: CrewIn) -> None:
    jid, cid = crew.jurisdiction_id, crew.id
    for model in (CrewSkill, CrewTerritory, CrewBreak, CrewMember):
        session.execute(delete(model).where(model.jurisdiction_id == jid, model.crew_id == cid))
    session.add_all(
        CrewSkill(jurisdiction_id=jid, crew_id=cid, skill_code=s) for s in sorted(set(data.skills))
    )
    session.add_all(
        CrewTerritory(jurisdiction_id=jid, crew_id=cid, ward_code=w)
        for w in sorted(set(data.territory))
    )
    session.add_all(
        CrewBreak(
            jurisdiction_id=jid,
            crew_id=cid,
            seq=k + 1,
            earliest_start=b.earliest_start,
            latest_start=b.latest_start,
            duration_s=b.duration_s,
        )
        for k, b in enumerate(sorted(data.breaks, key=lambda b: b.earliest_start))
    )
    session.add_all(
        CrewMember(jurisdiction_id=jid, crew_id=cid, name=m.name, role=m.role) for m in data.members
    )
    if data.staff is not None:
        _set_staff(session, crew, data.staff)


def _set_columns(crew: Crew, data: CrewIn) -> None:
    crew.name = data.name
    crew.depot_name = data.depot.name
    crew.depot = WKTElement(f"POINT({data.depot.lon!r} {data.depot.lat!r})", srid=4326)  # type: ignore[assignment]
    crew.shift_start = data.shift_start
    crew.shift_end = data.shift_end
    crew.workdays = sorted(set(data.workdays))
    crew.capacity = data.capacity
    crew.active = data.active


# --- membership: which crew users act for which crew ----------------------------------------


def _crew_users(session: Session, names: Iterable[str]) -> dict[str, StaffUser]:
    """Return the staff users ``names``, all of them crew users; 422 naming each that is not."""
    wanted = sorted(set(names))
    users = auth_service.users_named(session, names=wanted)
    errors = [
        FieldError("staff", f"no staff user {n!r}", "unknown_staff_user")
        for n in wanted
        if n not in users
    ] + [
        FieldError(
            "staff", f"{n!r} is a {users[n].role}; only crew users belong to a crew", "not_crew"
        )
        for n in wanted
        if n in users and users[n].role != "crew"
    ]
    if errors:
        raise ValidationFailed(
            "Crew members must be existing crew users "
            "(geo311 token create --name NAME --role crew).",
            errors=errors,
        )
    return users


def _touch(
    session: Session, crews: Iterable[tuple[int | None, int | None]], *, but: int | None = None
) -> None:
    """Bump the version of crews (city, crew id) whose membership changed, so an edit read
    before fails. City by city: on Citus each update then runs on that city's one shard."""
    by_city: dict[int | None, set[int]] = {}
    for jid, crew_id in crews:
        if crew_id is not None and crew_id != but:
            by_city.setdefault(jid, set()).add(crew_id)
    for jid, ids in by_city.items():
        touch = update(Crew).where(Crew.id.in_(ids))
        if jid is not None:
            touch = touch.where(Crew.jurisdiction_id == jid)
        session.execute(touch.values(version=Crew.version + 1))


def _set_staff(session: Session, crew: Crew, names: Sequence[str]) -> None:
    """Make ``names`` exactly the crew users of ``crew`` (moving them from any other crew)."""
    users = _crew_users(session, names)
    for name in auth_service.crew_members(session, crew_ids=[crew.id]).get(crew.id, []):
        if name not in users:
            leaving = auth_service.get_user(session, name=name)
            if leaving is not None:
                auth_service.set_crew(session, user=leaving, crew_id=None, jurisdiction_id=None)
    # A user's crew is in the user's city (set_crew keeps them together): read it first.
    before = [
        (
            u.jurisdiction_id,
            auth_service.set_crew(
                session, user=u, crew_id=crew.id, jurisdiction_id=crew.jurisdiction_id
            ),
        )
        for u in users.values()
    ]
    _touch(session, before, but=crew.id)


def set_membership(
    session: Session, *, jurisdiction_id: int, user_name: str, crew_code: str | None
) -> StaffUser:
    """Put crew user ``user_name`` on crew ``crew_code`` (None: on none); return the user.

    A user is on one crew: joining one leaves the other. Both crews' versions move on.
    """
    crew = _crew_row(session, jurisdiction_id, crew_code) if crew_code is not None else None
    user = auth_service.get_user(session, name=user_name)
    if user is None:
        raise NotFound(f"No staff user {user_name!r}.")
    if crew is not None and user.role != "crew":
        raise ValidationFailed(
            f"{user_name!r} is a {user.role}; only crew users belong to a crew.",
            errors=[FieldError("crew", "only crew users belong to a crew", "not_crew")],
        )
    before_city = user.jurisdiction_id
    before = auth_service.set_crew(
        session,
        user=user,
        crew_id=crew.id if crew is not None else None,
        jurisdiction_id=jurisdiction_id,
    )
    if before != user.crew_id:
        _touch(session, [(before_city, before), (user.jurisdiction_id, user.crew_id)])
    session.flush()
    return user


def crew_code_of(session: Session, *, jurisdiction_id: int, crew_id: int | None) -> str | None:
    """Return the code of crew ``crew_id`` in the jurisdiction, or None."""
    if crew_id is None:
        return None
    return session.scalar(
        select(Crew.code).where(Crew.jurisdiction_id == jurisdiction_id, Crew.id == crew_id)
    )


def crew_id_of(session: Session, *, jurisdiction_id: int, code: str) -> int | None:
    """Return the id of crew ``code`` in the jurisdiction, or None."""
    return session.scalar(
        select(Crew.id).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == code)
    )


def create_crew(session: Session, *, jurisdiction_id: int, data: CrewIn) -> CrewOut:
    """Return the new crew; CrewCodeTaken if the code is in use, 422 for unknown skills/wards."""
    taken = session.scalar(
        select(Crew.id).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == data.code)
    )
    if taken is not None:
        raise CrewCodeTaken(f"A crew {data.code!r} exists already.")
    _check_skills(session, jurisdiction_id, data.skills, "skills")
    _check_wards(session, jurisdiction_id, data.territory)
    crew = Crew(jurisdiction_id=jurisdiction_id, code=data.code)
    _set_columns(crew, data)
    session.add(crew)
    try:
        session.flush()
    except IntegrityError as exc:  # the same code created at the same instant elsewhere
        raise CrewCodeTaken(f"A crew {data.code!r} exists already.") from exc
    _write_parts(session, crew, data)
    session.flush()
    return get_crew(session, jurisdiction_id=jurisdiction_id, code=data.code)


def replace_crew(
    session: Session,
    *,
    jurisdiction_id: int,
    code: str,
    data: CrewIn,
    expected_version: int | None = None,
) -> CrewOut:
    """Return the crew after replacing everything about it with ``data``.

    ``expected_version`` (from the version the caller read) makes a concurrent edit a
    StaleCrew conflict instead of a lost update. The code may change (a rename).
    """
    crew = session.scalar(
        select(Crew)
        .where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == code)
        .with_for_update()
    )
    if crew is None:
        raise UnknownCrew(f"No crew {code!r}.")
    if expected_version is not None and crew.version != expected_version:
        raise StaleCrew(
            f"Crew {code!r} is at version {crew.version}, not {expected_version}: "
            "read it again and reapply your change.",
            extra={"current_version": crew.version},
        )
    if data.code != code:
        taken = session.scalar(
            select(Crew.id).where(Crew.jurisdiction_id == jurisdiction_id, Crew.code == data.code)
        )
        if taken is not None:
            raise CrewCodeTaken(f"A crew {data.code!r} exists already.")
        crew.code = data.code
    _check_skills(session, jurisdiction_id, data.skills, "skills")
    _check_wards(session, jurisdiction_id, data.territory)
    _set_columns(crew, data)
    crew.version = crew.version + 1
    session.flush()
    _write_parts(session, crew, data)
    session.flush()
    return get_crew(session, jurisdiction_id=jurisdiction_id, code=data.code)


def delete_crew(session: Session, *, jurisdiction_id: int, code: str) -> None:
    """Delete a crew and everything about it; its crew users are then on no crew."""
    crew = _crew_row(session, jurisdiction_id, code)
    auth_service.clear_crew(session, crew_id=crew.id)
    session.delete(crew)
    session.flush()


def get_crew(session: Session, *, jurisdiction_id: int, code: str) -> CrewOut:
    """Return one crew with its skills, territory, breaks and members; UnknownCrew if none."""
    crews = _views(session, jurisdiction_id, [_crew_row(session, jurisdiction_id, code)])
    return crews[0]


def list_crews(
    session: Session, *, jurisdiction_id: int, active_only: bool = False
) -> list[CrewOut]:
    """Return the jurisdiction's crews by code."""
    query = select(Crew).where(Crew.jurisdiction_id == jurisdiction_id).order_by(Crew.code)
    if active_only:
        query = query.where(Crew.active)
    return _views(session, jurisdiction_id, list(session.scalars(query)))


def _views(session: Session, jurisdiction_id: int, crews: Sequence[Crew]) -> list[CrewOut]:
    ids = [c.id for c in crews]
    skills: dict[int, list[str]] = {}
    wards: dict[int, list[str]] = {}
    breaks: dict[int, list[BreakIn]] = {}
    members: dict[int, list[MemberIn]] = {}
    staff = auth_service.crew_members(session, crew_ids=ids)
    for s in session.scalars(
        select(CrewSkill)
        .where(CrewSkill.jurisdiction_id == jurisdiction_id, CrewSkill.crew_id.in_(ids))
        .order_by(CrewSkill.skill_code)
    ):
        skills.setdefault(s.crew_id, []).append(s.skill_code)
    for t in session.scalars(
        select(CrewTerritory)
        .where(CrewTerritory.jurisdiction_id == jurisdiction_id, CrewTerritory.crew_id.in_(ids))
        .order_by(CrewTerritory.ward_code)
    ):
        wards.setdefault(t.crew_id, []).append(t.ward_code)
    for b in session.scalars(
        select(CrewBreak)
        .where(CrewBreak.jurisdiction_id == jurisdiction_id, CrewBreak.crew_id.in_(ids))
        .order_by(CrewBreak.seq)
    ):
        breaks.setdefault(b.crew_id, []).append(
            BreakIn(
                earliest_start=b.earliest_start,
                latest_start=b.latest_start,
                duration_s=b.duration_s,
            )
        )
    for m in session.scalars(
        select(CrewMember)
        .where(CrewMember.jurisdiction_id == jurisdiction_id, CrewMember.crew_id.in_(ids))
        .order_by(CrewMember.id)
    ):
        members.setdefault(m.crew_id, []).append(MemberIn(name=m.name, role=m.role))
    out = []
    for c in crews:
        point = to_shape(c.depot)
        out.append(
            CrewOut(
                id=c.id,
                version=c.version,
                updated_at=c.updated_at,
                code=c.code,
                name=c.name,
                depot=DepotIn(lon=point.x, lat=point.y, name=c.depot_name),
                shift_start=c.shift_start,
                shift_end=c.shift_end,
                workdays=list(c.workdays),
                capacity=c.capacity,
                skills=skills.get(c.id, []),
                territory=wards.get(c.id, []),
                breaks=breaks.get(c.id, []),
                members=members.get(c.id, []),
                staff=staff.get(c.id, []),
                active=c.active,
            )
        )
    return out


# --- rules and what the planner needs ---------------------------------------------------------


def list_skill_rules(session: Session, *, jurisdiction_id: int) -> list[SkillRuleOut]:
    """Return the jurisdiction's skill rules."""
    rows = session.scalars(
        select(SkillRule)
        .where(SkillRule.jurisdiction_id == jurisdiction_id)
        .order_by(SkillRule.category_code.nulls_last(), SkillRule.asset_type, SkillRule.skill_code)
    )
    return [
        SkillRuleOut(
            id=r.id, category_code=r.category_code, asset_type=r.asset_type, skill_code=r.skill_code
        )
        for r in rows
    ]


def replace_skill_rules(
    session: Session, *, jurisdiction_id: int, rules_in: Sequence[SkillRuleIn]
) -> list[SkillRuleOut]:
    """Replace the whole rule set with ``rules_in`` (duplicates folded); return it."""
    errors: list[FieldError] = []
    categories = {r.category_code for r in rules_in if r.category_code}
    asset_types = {r.asset_type for r in rules_in if r.asset_type}
    known_categories = set(
        session.scalars(
            select(ServiceCategory.code).where(
                ServiceCategory.jurisdiction_id == jurisdiction_id,
                ServiceCategory.code.in_(categories),
            )
        )
    )
    known_types = set(
        session.scalars(
            select(AssetType.code).where(
                AssetType.jurisdiction_id == jurisdiction_id, AssetType.code.in_(asset_types)
            )
        )
    )
    for k, r in enumerate(rules_in):
        if r.category_code and r.category_code not in known_categories:
            errors.append(FieldError(f"{k}.category_code", f"no category {r.category_code!r}"))
        if r.asset_type and r.asset_type not in known_types:
            errors.append(FieldError(f"{k}.asset_type", f"no asset type {r.asset_type!r}"))
    if errors:
        raise ValidationFailed("Some rules name things that do not exist.", errors=errors)
    _check_skills(session, jurisdiction_id, (r.skill_code for r in rules_in), "skill_code")
    session.execute(delete(SkillRule).where(SkillRule.jurisdiction_id == jurisdiction_id))
    unique = {(r.category_code, r.asset_type, r.skill_code) for r in rules_in}
    session.add_all(
        SkillRule(jurisdiction_id=jurisdiction_id, category_code=c, asset_type=a, skill_code=s)
        for c, a, s in sorted(unique, key=lambda t: tuple(x or "" for x in t))
    )
    session.flush()
    return list_skill_rules(session, jurisdiction_id=jurisdiction_id)


def unknown_skills(session: Session, *, jurisdiction_id: int, codes: Iterable[str]) -> list[str]:
    """Return the codes among ``codes`` that name no skill of the jurisdiction, sorted."""
    wanted = set(codes)
    if not wanted:
        return []
    known = set(
        session.scalars(
            select(Skill.code).where(
                Skill.jurisdiction_id == jurisdiction_id, Skill.code.in_(wanted)
            )
        )
    )
    return sorted(wanted - known)


def category_skills(session: Session, *, jurisdiction_id: int, category_code: str) -> list[str]:
    """Return the skills the rules for the category alone (no asset type) name, sorted."""
    return sorted(
        session.scalars(
            select(SkillRule.skill_code).where(
                SkillRule.jurisdiction_id == jurisdiction_id,
                SkillRule.category_code == category_code,
                SkillRule.asset_type.is_(None),
            )
        )
    )


def set_category_skills(
    session: Session, *, jurisdiction_id: int, category_code: str, skills: Sequence[str]
) -> None:
    """Make ``skills`` the skills work of the category needs (its rules without an asset
    type; rules that also name an asset type are left as they are)."""
    _check_skills(session, jurisdiction_id, skills, "skills")
    session.execute(
        delete(SkillRule).where(
            SkillRule.jurisdiction_id == jurisdiction_id,
            SkillRule.category_code == category_code,
            SkillRule.asset_type.is_(None),
        )
    )
    session.add_all(
        SkillRule(jurisdiction_id=jurisdiction_id, category_code=category_code, skill_code=s)
        for s in sorted(set(skills))
    )
    session.flush()


def rule_set(session: Session, *, jurisdiction_id: int) -> list[rules.SkillRule]:
    """Return the skill rules as the pure rule engine takes them."""
    return [
        rules.SkillRule(r.category_code, r.asset_type, r.skill_code)
        for r in list_skill_rules(session, jurisdiction_id=jurisdiction_id)
    ]


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def crew_facts(session: Session, *, jurisdiction_id: int) -> list[rules.CrewFacts]:
    """Return every crew as the rule engine sees it, by code (one query: intake runs it for
    every new work order)."""
    # The city as a constant in the subqueries too: Citus routes a correlated subquery to one
    # shard only by its own filter on jurisdiction_id.
    skills = select(CrewSkill.skill_code).where(
        CrewSkill.jurisdiction_id == jurisdiction_id, CrewSkill.crew_id == Crew.id
    )
    wards = select(CrewTerritory.ward_code).where(
        CrewTerritory.jurisdiction_id == jurisdiction_id, CrewTerritory.crew_id == Crew.id
    )
    rows = session.execute(
        select(
            Crew.id,
            Crew.code,
            Crew.workdays,
            Crew.shift_start,
            Crew.shift_end,
            Crew.active,
            func.array(skills.scalar_subquery()).label("skills"),
            func.array(wards.scalar_subquery()).label("territory"),
        )
        .where(Crew.jurisdiction_id == jurisdiction_id)
        .order_by(Crew.code)
    ).all()
    return [
        rules.CrewFacts(
            id=r.id,
            code=r.code,
            skills=frozenset(r.skills),
            territory=frozenset(r.territory),
            workdays=frozenset(r.workdays),
            shift_s=_seconds(r.shift_end) - _seconds(r.shift_start),
            active=r.active,
        )
        for r in rows
    ]


def choose_crew(
    session: Session,
    *,
    jurisdiction_id: int,
    category_code: str,
    asset_type: str | None,
    ward_code: str | None,
    due_on: date | None,
    load_s: Mapping[int, float] | None = None,
) -> rules.Choice:
    """Return the crew the jurisdiction's rules give this job to, or none with the reason.

    ``load_s`` (crew id → seconds of work booked on the due date) comes from the work orders.
    """
    return rules.choose_crew(
        rules.JobFacts(category_code, asset_type, ward_code, due_on),
        crew_facts(session, jurisdiction_id=jurisdiction_id),
        rule_set(session, jurisdiction_id=jurisdiction_id),
        load_s=load_s,
    )


@dataclass(frozen=True)
class CrewDay:
    """A crew's working day, as the planner needs it, in aware datetimes of that day."""

    crew_id: int
    code: str
    depot_lon: float
    depot_lat: float
    shift_start: datetime
    shift_end: datetime
    breaks: tuple[tuple[datetime, datetime, int], ...]  # (earliest start, latest start, s)
    skills: frozenset[str]
    capacity: int | None
    territory: frozenset[str] = frozenset()  # ward codes


def jurisdiction_zone(session: Session, *, jurisdiction_id: int) -> ZoneInfo:
    """Return the jurisdiction's time zone, in which crews' shifts and plans' days are read."""
    jurisdiction = session.get(Jurisdiction, jurisdiction_id)
    if jurisdiction is None:
        raise NotFound(f"No jurisdiction {jurisdiction_id}.")
    return ZoneInfo(jurisdiction.timezone)


def crews_on(session: Session, *, jurisdiction_id: int, day: date) -> list[CrewDay]:
    """Return the active crews that work on ``day`` (its ISO weekday), by code.

    Wall-clock shift and break times are placed on ``day`` in the jurisdiction's time zone.
    """
    zone = jurisdiction_zone(session, jurisdiction_id=jurisdiction_id)

    def at(t: time) -> datetime:
        return datetime.combine(day, t, tzinfo=zone)

    out = []
    for c in list_crews(session, jurisdiction_id=jurisdiction_id, active_only=True):
        if day.isoweekday() not in c.workdays:
            continue
        out.append(
            CrewDay(
                crew_id=c.id,
                code=c.code,
                depot_lon=c.depot.lon,
                depot_lat=c.depot.lat,
                shift_start=at(c.shift_start),
                shift_end=at(c.shift_end),
                breaks=tuple(
                    (at(b.earliest_start), at(b.latest_start), b.duration_s) for b in c.breaks
                ),
                skills=frozenset(c.skills),
                capacity=c.capacity,
                territory=frozenset(c.territory),
            )
        )
    return out


def service_times(session: Session, *, jurisdiction_id: int) -> dict[str, int]:
    """Return seconds on site per category code, for the categories that have one set."""
    rows = session.execute(
        select(CategoryServiceTime.category_code, CategoryServiceTime.service_s).where(
            CategoryServiceTime.jurisdiction_id == jurisdiction_id
        )
    ).all()
    return {str(c): int(s) for c, s in rows}


def put_service_time(
    session: Session,
    *,
    jurisdiction_id: int,
    category_code: str,
    service_s: int,
    access: tuple[time, time] | None = None,
    demand: int = 0,
) -> None:
    """Set how long a job of ``category_code`` keeps a crew on site, the wall-clock hours its
    work may start in (``access``; None: any time of the crew's shift), and the units of a
    crew vehicle's capacity it takes (``demand``)."""
    if session.get(ServiceCategory, (jurisdiction_id, category_code)) is None:
        raise NotFound(f"No category {category_code!r}.")
    if access is not None and access[1] <= access[0]:
        raise ValidationFailed(
            "The access hours end before they start.",
            errors=[FieldError("access_end", "must be after access_start", "window_order")],
        )
    row = session.get(CategoryServiceTime, (jurisdiction_id, category_code))
    if row is None:
        row = CategoryServiceTime(
            jurisdiction_id=jurisdiction_id, category_code=category_code, service_s=service_s
        )
        session.add(row)
    row.service_s = service_s
    row.demand = demand
    row.access_start, row.access_end = access if access else (None, None)
    session.flush()


def get_service_time(
    session: Session, *, jurisdiction_id: int, category_code: str
) -> CategoryServiceTime | None:
    """Return the category's time on site and access hours, or None when it has none set."""
    return session.get(CategoryServiceTime, (jurisdiction_id, category_code))


def list_service_times(session: Session, *, jurisdiction_id: int) -> list[CategoryServiceTime]:
    """Return the categories' service times and access hours, by category code."""
    return list(
        session.scalars(
            select(CategoryServiceTime)
            .where(CategoryServiceTime.jurisdiction_id == jurisdiction_id)
            .order_by(CategoryServiceTime.category_code)
        )
    )


def crew_count(session: Session, *, jurisdiction_id: int) -> int:
    """Return how many crews the jurisdiction has."""
    return int(
        session.scalar(select(func.count()).where(Crew.jurisdiction_id == jurisdiction_id)) or 0
    )
