"""Dispatchers' dedup routes: thin — check the role, call the service, commit, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from geo311.flows import split_report as split_flow
from geo311.kernel.auth.service import Principal
from geo311.kernel.deps import SessionDep, SettingsDep, require_roles
from geo311.kernel.fields import Id
from geo311.resident.dedup import moves
from geo311.resident.dedup.schemas import IncidentReportsOut, MergeIn, MoveOut, ReasonIn
from layers.deps import JurisdictionDep

router = APIRouter(prefix="/api/v1/staff", tags=["dedup"])

Dispatcher = Annotated[Principal, Depends(require_roles("dispatcher"))]


def _actor(principal: Principal) -> str:
    return f"staff:{principal.name}"


@router.get(
    "/incidents/{incident_id}/reports",
    response_model=IncidentReportsOut,
    summary="An incident's reports, with why each was matched, and its merges and splits",
)
def list_incident_reports(
    incident_id: Id, session: SessionDep, jurisdiction: JurisdictionDep, _: Dispatcher
) -> IncidentReportsOut:
    return moves.incident_reports(session, jurisdiction_id=jurisdiction.id, incident_id=incident_id)


@router.post(
    "/incidents/{incident_id}/merge",
    response_model=MoveOut,
    status_code=201,
    summary="Merge another incident into this one (its reports and subscribers move; "
    "it is cancelled)",
)
def merge_incident(
    incident_id: Id,
    body: MergeIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
) -> MoveOut:
    move = moves.merge(
        session,
        jurisdiction_id=jurisdiction.id,
        into_incident_id=incident_id,
        from_incident_id=body.source_incident_id,
        actor=_actor(principal),
        reason=body.reason,
    )
    out = moves.move_out(session, move)
    session.commit()
    return out


@router.post(
    "/reports/{tracking_id}/split",
    response_model=MoveOut,
    status_code=201,
    summary="Split a report out of its incident into a new incident of its own",
)
def split_report(
    tracking_id: str,
    body: ReasonIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
    settings: SettingsDep,
) -> MoveOut:
    move = split_flow.split_report(
        session,
        jurisdiction_id=jurisdiction.id,
        tracking_id=tracking_id,
        actor=_actor(principal),
        reason=body.reason,
        default_service_s=settings.routing.default_service_s,
    )
    out = moves.move_out(session, move)
    session.commit()
    return out


@router.get("/moves/{move_id}", response_model=MoveOut, summary="A merge or split")
def get_move(
    move_id: Id, session: SessionDep, jurisdiction: JurisdictionDep, _: Dispatcher
) -> MoveOut:
    return moves.move_out(
        session, moves.get_move(session, jurisdiction_id=jurisdiction.id, move_id=move_id)
    )


@router.post(
    "/moves/{move_id}/undo",
    response_model=MoveOut,
    summary="Undo a merge or split: reports, subscribers and statuses go back",
)
def undo_move(
    move_id: Id,
    body: ReasonIn,
    session: SessionDep,
    jurisdiction: JurisdictionDep,
    principal: Dispatcher,
) -> MoveOut:
    move = moves.undo(
        session,
        jurisdiction_id=jurisdiction.id,
        move_id=move_id,
        actor=_actor(principal),
        reason=body.reason,
    )
    out = moves.move_out(session, move)
    session.commit()
    return out
