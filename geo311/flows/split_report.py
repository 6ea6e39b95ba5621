"""A dispatcher splits a report out of its incident: dedup moves it, dispatch assigns the
incident it now has."""

from __future__ import annotations

from sqlalchemy.orm import Session

from dispatch import assignment
from geo311.resident.dedup import moves
from geo311.resident.dedup.models import IncidentMove
from work_orders import lookups


def split_report(
    session: Session,
    *,
    jurisdiction_id: int,
    tracking_id: str,
    actor: str,
    reason: str,
    default_service_s: int | None = None,
) -> IncidentMove:
    """Return the move that took the report out of its incident into a new one.

    1. dedup splits the report out (a new incident and work order, the requester's
       subscription, the audit trail; see ``dedup.moves.split``);
    2. dispatch gives the new incident's work order to a crew by the rules.

    Flushes only; the caller commits.
    """
    move = moves.split(
        session,
        jurisdiction_id=jurisdiction_id,
        tracking_id=tracking_id,
        actor=actor,
        reason=reason,
    )
    opened = lookups.get_incident(
        session, jurisdiction_id=jurisdiction_id, incident_id=move.to_incident_id
    )
    assignment.assign_opened(session, incident=opened, default_service_s=default_service_s)
    return move
