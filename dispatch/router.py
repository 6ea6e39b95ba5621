"""Dispatch routes: crews, skills, skill rules, service times, the road network, the
dispatcher's queue. Thin: parse, call the service, commit, answer. Staff read; admins change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from dispatch import assignment, roads, service
from dispatch.matrix import provider_for
from dispatch.schemas import (
    CrewIn,
    CrewOut,
    QueueAssignOut,
    QueuedWorkOrderOut,
    RoadNetworkOut,
    ServiceTimeIn,
    ServiceTimeOut,
    SkillIn,
    SkillOut,
    SkillRuleIn,
    SkillRuleOut,
    StaffCrewIn,
    StaffCrewOut,
)
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import SessionDep, SettingsDep, require_roles
from geo311.kernel.errors import NotFound, PreconditionRequired, ValidationFailed
from geo311.kernel.fields import Count
from layers.deps import JurisdictionDep

router = APIRouter(prefix="/api/v1", tags=["dispatch"])

Staff = Annotated[Principal, Depends(require_roles("dispatcher", "planner", "crew"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
QueueReader = Annotated[Principal, Depends(require_roles("dispatcher", "planner"))]
Dispatcher = Annotated[Principal, Depends(require_roles("dispatcher"))]


def _version(if_match: str | None) -> int:
    """Return the crew version an If-Match header names ("3" or W/"3"); 428 without one."""
    value = (if_match or "").strip().removeprefix("W/").strip('"')
    if not value or value == "*":
        raise PreconditionRequired(
            "Send the version of the crew you read: GET it and send its ETag back as "
            'If-Match (e.g. If-Match: "3"), so that an edit made since is not overwritten.'
        )
    # ASCII digits only ("²".isdigit() is true, int("²") fails), and no more than a bigint.
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ValidationFailed("If-Match must carry the crew's version, as its ETag does.")
    return int(value)


@router.get("/skills", response_model=list[SkillOut])
def list_skills(session: SessionDep, jurisdiction: JurisdictionDep, _: Staff) -> list[SkillOut]:
    return [
        SkillOut(code=s.code, name=s.name)
        for s in service.list_skills(session, jurisdiction_id=jurisdiction.id)
    ]


@router.put("/skills/{code}", response_model=SkillOut)
def put_skill(
    code: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="e.g. arborist")],
    body: SkillIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Admin,
) -> SkillOut:
    skill = service.put_skill(session, jurisdiction_id=jurisdiction.id, code=code, name=body.name)
    session.commit()
    return SkillOut(code=skill.code, name=skill.name)


@router.delete("/skills/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_skill(
    code: str, session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> Response:
    service.delete_skill(session, jurisdiction_id=jurisdiction.id, code=code)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/crews", response_model=list[CrewOut])
def list_crews(
    session: SessionDep, jurisdiction: JurisdictionDep, _: Staff, active_only: bool = False
) -> list[CrewOut]:
    return service.list_crews(session, jurisdiction_id=jurisdiction.id, active_only=active_only)


@router.post("/crews", response_model=CrewOut, status_code=status.HTTP_201_CREATED)
def create_crew(
    body: CrewIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    response: Response,
    _: Admin,
) -> CrewOut:
    crew = service.create_crew(session, jurisdiction_id=jurisdiction.id, data=body)
    # Headers first: a header that cannot be sent must fail before the commit, not after it
    # (a crew code that was not Latin-1 once answered 500 with the crew stored).
    response.headers["ETag"] = f'"{crew.version}"'
    response.headers["Location"] = f"/api/v1/crews/{crew.code}"
    session.commit()
    return crew


@router.get("/crews/{code}", response_model=CrewOut)
def get_crew(
    code: str, session: SessionDep, jurisdiction: JurisdictionDep, response: Response, _: Staff
) -> CrewOut:
    crew = service.get_crew(session, jurisdiction_id=jurisdiction.id, code=code)
    response.headers["ETag"] = f'"{crew.version}"'
    return crew


@router.put("/crews/{code}", response_model=CrewOut)
def replace_crew(
    code: str,
    body: CrewIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    response: Response,
    _: Admin,
    if_match: Annotated[
        str | None,
        Header(
            description="The version read (the ETag), required: a stale one gets 409, "
            "none 428, never a lost edit"
        ),
    ] = None,
) -> CrewOut:
    crew = service.replace_crew(
        session,
        jurisdiction_id=jurisdiction.id,
        code=code,
        data=body,
        expected_version=_version(if_match),
    )
    response.headers["ETag"] = f'"{crew.version}"'
    session.commit()
    return crew


@router.delete("/crews/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_crew(
    code: str, session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> Response:
    service.delete_crew(session, jurisdiction_id=jurisdiction.id, code=code)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/staff/{name}/crew",
    response_model=StaffCrewOut,
    summary="Put a crew user on a crew (or on none); it then acts on that crew's work only",
)
def set_staff_crew(
    name: str,
    body: StaffCrewIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Admin,
) -> StaffCrewOut:
    user = service.set_membership(
        session, jurisdiction_id=jurisdiction.id, user_name=name, crew_code=body.crew
    )
    session.commit()
    return StaffCrewOut(name=user.name, role=user.role, crew=body.crew)


@router.get(
    "/me/crew",
    response_model=CrewOut,
    summary="The caller's crew (what a crew's tablet shows); 404 when on none",
)
def my_crew(
    session: SessionDep, jurisdiction: JurisdictionDep, response: Response, principal: Staff
) -> CrewOut:
    code = service.crew_code_of(session, jurisdiction_id=jurisdiction.id, crew_id=principal.crew_id)
    if code is None:
        raise NotFound(f"Staff user {principal.name!r} belongs to no crew.")
    crew = service.get_crew(session, jurisdiction_id=jurisdiction.id, code=code)
    response.headers["ETag"] = f'"{crew.version}"'
    return crew


@router.get("/dispatch/skill-rules", response_model=list[SkillRuleOut])
def list_skill_rules(
    session: SessionDep, jurisdiction: JurisdictionDep, _: Staff
) -> list[SkillRuleOut]:
    return service.list_skill_rules(session, jurisdiction_id=jurisdiction.id)


@router.put("/dispatch/skill-rules", response_model=list[SkillRuleOut])
def replace_skill_rules(
    body: list[SkillRuleIn], session: SessionDep, jurisdiction: JurisdictionDep, _: Admin
) -> list[SkillRuleOut]:
    out = service.replace_skill_rules(session, jurisdiction_id=jurisdiction.id, rules_in=body)
    session.commit()
    return out


@router.get("/dispatch/service-times", response_model=list[ServiceTimeOut])
def list_service_times(
    session: SessionDep, jurisdiction: JurisdictionDep, _: Staff
) -> list[ServiceTimeOut]:
    return [
        ServiceTimeOut(
            category_code=t.category_code,
            service_s=t.service_s,
            access_start=t.access_start,
            access_end=t.access_end,
            demand=t.demand,
        )
        for t in service.list_service_times(session, jurisdiction_id=jurisdiction.id)
    ]


@router.put("/dispatch/service-times/{category_code}", response_model=ServiceTimeOut)
def put_service_time(
    category_code: str,
    body: ServiceTimeIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: Admin,
) -> ServiceTimeOut:
    service.put_service_time(
        session,
        jurisdiction_id=jurisdiction.id,
        category_code=category_code,
        service_s=body.service_s,
        access=(body.access_start, body.access_end)
        if body.access_start and body.access_end
        else None,
        demand=body.demand,
    )
    session.commit()
    return ServiceTimeOut(category_code=category_code, **body.model_dump())


@router.get("/dispatch/roads", response_model=RoadNetworkOut)
def road_network(
    session: SessionDep, jurisdiction: JurisdictionDep, settings: SettingsDep, _: Staff
) -> RoadNetworkOut:
    network = roads.get_network(session, jurisdiction_id=jurisdiction.id)
    provider = provider_for(session, jurisdiction_id=jurisdiction.id, routing=settings.routing)
    if network is None:
        return RoadNetworkOut(loaded=False, matrix_provider=provider.name)
    return RoadNetworkOut(
        loaded=True,
        source=network.source,
        vertices=network.vertices,
        edges=network.edges,
        routable_edges=network.routable_edges,
        max_speed_kmh=network.max_speed_kmh,
        loaded_at=network.loaded_at,
        matrix_provider=provider.name,
    )


@router.get(
    "/dispatch/queue",
    response_model=list[QueuedWorkOrderOut],
    summary="Work no crew could be given, most urgent first, with the reason",
)
def dispatch_queue(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    _: QueueReader,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[Count, Query()] = 0,
) -> list[QueuedWorkOrderOut]:
    rows = assignment.list_queue(
        session, jurisdiction_id=jurisdiction.id, limit=limit, offset=offset
    )
    return [
        QueuedWorkOrderOut(
            work_order_id=r.work_order_id,
            incident_id=r.incident_id,
            status=r.status,
            category_code=r.category_code,
            category=r.category,
            ward=r.ward_code,
            location=(r.lon, r.lat),
            due_at=r.due_at,
            sla_state=r.sla_state,
            reason=r.reason,
            detail=r.detail,
            skills=r.skills,
            queued_by=r.actor,
            queued_at=r.queued_at,
        )
        for r in rows
    ]


@router.post(
    "/dispatch/queue/assign",
    response_model=QueueAssignOut,
    summary="Try the rules again on the queue and on open work with no crew",
)
def assign_queue(
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    settings: SettingsDep,
    principal: Dispatcher,
) -> QueueAssignOut:
    summary = assignment.assign_queued(
        session,
        jurisdiction_id=jurisdiction.id,
        actor=f"{assignment.ACTOR} (run by {principal.role}:{principal.name})",
        default_service_s=settings.routing.default_service_s,
    )
    session.commit()
    return QueueAssignOut(
        examined=summary.examined,
        assigned=summary.assigned,
        still_queued=summary.queued,
        skipped=summary.skipped,
    )
