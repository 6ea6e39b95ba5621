"""Dispatchers' moves: an incident's reports, merging incidents, splitting a report out, and
undoing either."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geo311.resident.dedup.errors import (
    IncidentNotFound,
    IncidentNotMergeable,
    MoveNotFound,
    MoveNotUndoable,
    NothingToSplit,
    ReportNotFound,
    SameIncident,
)
from geo311.resident.dedup.models import IncidentMove
from geo311.resident.dedup.schemas import (
    DedupOut,
    IncidentReportOut,
    IncidentReportsOut,
    IncidentSummaryOut,
    MoveOut,
)
from geo311.resident.dedup.scoring import (
    UNMATCHABLE_STATUSES,
)
from geo311.resident.dedup.status import (
    cancel_merged_incident,
    reopen_incident,
    restore_incident_status,
)
from geo311.resident.intake.models import Report
from geo311.resident.intake.schemas import PointGeoJSON
from work_orders import audit, incidents
from work_orders.models import Incident, ServiceCategory
from work_orders.public_notes import PublicNote

# --- staff: list, merge, split, undo ------------------------------------------------------

_INCIDENT_REPORTS = text(
    """
    SELECT r.id, r.tracking_id, r.category_code, r.reported_at, r.channel, r.address,
           r.asset_id, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat,
           ST_Distance(r.geom::geography, i.geom::geography) AS distance_m,
           r.dedup_decision, r.dedup_score, r.dedup_signals,
           m.tracking_id AS matched_tracking_id,
           EXISTS (SELECT 1 FROM photos ph
                   WHERE ph.jurisdiction_id = r.jurisdiction_id AND ph.report_id = r.id
                     AND ph.kind = 'report') AS has_photo,
           EXISTS (SELECT 1 FROM subscriptions s
                   WHERE s.jurisdiction_id = r.jurisdiction_id AND s.incident_id = i.id
                     AND s.requester_id = r.requester_id) AS subscribed
    FROM reports AS r
    JOIN incidents AS i ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id
    LEFT JOIN reports AS m ON m.jurisdiction_id = r.jurisdiction_id AND m.id = r.matched_report_id
    WHERE r.jurisdiction_id = CAST(:jid AS smallint) AND r.incident_id = :incident_id
    ORDER BY r.reported_at, r.id
    """
)


def incident_reports(
    session: Session, *, jurisdiction_id: int, incident_id: int
) -> IncidentReportsOut:
    """Return an incident with its reports (oldest first) and the moves that touched it."""
    incident = session.get(Incident, (jurisdiction_id, incident_id))
    if incident is None:
        raise IncidentNotFound(f"There is no incident {incident_id}.")
    rows = session.execute(
        _INCIDENT_REPORTS, {"jid": jurisdiction_id, "incident_id": incident_id}
    ).all()
    lon, lat = session.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM incidents WHERE jurisdiction_id = :j AND id = :i"),
        {"j": jurisdiction_id, "i": incident_id},
    ).one()
    subscribers = session.execute(
        text("SELECT count(*) FROM subscriptions WHERE jurisdiction_id = :j AND incident_id = :i"),
        {"j": jurisdiction_id, "i": incident_id},
    ).scalar_one()
    moves = session.scalars(
        select(IncidentMove)
        .where(
            IncidentMove.jurisdiction_id == jurisdiction_id,
            (IncidentMove.from_incident_id == incident_id)
            | (IncidentMove.to_incident_id == incident_id),
        )
        .order_by(IncidentMove.at, IncidentMove.id)
    ).all()
    return IncidentReportsOut(
        incident=IncidentSummaryOut(
            id=incident.id,
            status=incident.status,
            category=incident.category_code,
            location=PointGeoJSON(coordinates=(lon, lat)),
            opened_at=incident.opened_at,
            closed_at=incident.closed_at,
            report_count=len(rows),
            subscriber_count=subscribers,
        ),
        reports=[
            IncidentReportOut(
                tracking_id=row.tracking_id,
                category=row.category_code,
                reported_at=row.reported_at,
                channel=row.channel,
                location=PointGeoJSON(coordinates=(row.lon, row.lat)),
                distance_m=round(float(row.distance_m), 1),
                address=row.address,
                asset_id=row.asset_id,
                has_photo=row.has_photo,
                subscribed=row.subscribed,
                matched_report=row.matched_tracking_id,
                dedup=None
                if row.dedup_decision is None
                else DedupOut(
                    decision=row.dedup_decision,
                    score=row.dedup_score,
                    signals=row.dedup_signals,
                ),
            )
            for row in rows
        ],
        moves=[move_out(session, m) for m in moves],
    )


def report_count(session: Session, *, jurisdiction_id: int, incident_id: int) -> int:
    """Return how many reports an incident has (its supporters)."""
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM reports WHERE jurisdiction_id = CAST(:j AS smallint) "
                "AND incident_id = :i"
            ),
            {"j": jurisdiction_id, "i": incident_id},
        ).scalar_one()
    )


def move_out(session: Session, move: IncidentMove) -> MoveOut:
    """Return the API view of a move."""
    tracking = session.scalars(
        select(Report.tracking_id)
        .where(Report.jurisdiction_id == move.jurisdiction_id, Report.id.in_(move.report_ids))
        .order_by(Report.reported_at, Report.id)
    ).all()
    return MoveOut(
        id=move.id,
        kind=move.kind,
        from_incident_id=move.from_incident_id,
        to_incident_id=move.to_incident_id,
        reports=list(tracking),
        actor=move.actor,
        reason=move.reason,
        at=move.at,
        undone_at=move.undone_at,
        undone_by=move.undone_by,
        undo_reason=move.undo_reason,
    )


def get_move(session: Session, *, jurisdiction_id: int, move_id: int) -> IncidentMove:
    """Return a move; MoveNotFound when there is none."""
    move = session.get(IncidentMove, (jurisdiction_id, move_id))
    if move is None:
        raise MoveNotFound(f"There is no merge or split {move_id}.")
    return move


def _lock_incidents(session: Session, jurisdiction_id: int, *ids: int) -> dict[int, Incident]:
    """Return the incidents, row-locked in id order (so two moves never deadlock)."""
    found: dict[int, Incident] = {}
    for incident_id in sorted(set(ids)):
        incident = session.get(
            Incident,
            (jurisdiction_id, incident_id),
            with_for_update=True,
            populate_existing=True,
        )
        if incident is None:
            raise IncidentNotFound(f"There is no incident {incident_id}.")
        found[incident_id] = incident
    return found


def _report_ids(session: Session, jurisdiction_id: int, incident_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Report.id)
            .where(Report.jurisdiction_id == jurisdiction_id, Report.incident_id == incident_id)
            .order_by(Report.id)
        )
    )


def _first_tracking_id(session: Session, jurisdiction_id: int, incident_id: int) -> str:
    """Return the tracking id of an incident's earliest report: the request the others are
    duplicates of (as Open311 names it)."""
    return session.execute(
        select(Report.tracking_id)
        .where(Report.jurisdiction_id == jurisdiction_id, Report.incident_id == incident_id)
        .order_by(Report.reported_at, Report.id)
        .limit(1)
    ).scalar_one()


def _move_reports(session: Session, jurisdiction_id: int, ids: list[int], to: int) -> None:
    session.execute(
        text(
            "UPDATE reports SET incident_id = :to "
            "WHERE jurisdiction_id = CAST(:j AS smallint) AND id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"to": to, "j": jurisdiction_id, "ids": ids},
    )


def _subscribe_reporters(session: Session, jurisdiction_id: int, incident_id: int) -> None:
    """Make sure every requester with a report in the incident hears about it."""
    session.execute(
        text(
            """
            INSERT INTO subscriptions (jurisdiction_id, incident_id, requester_id, report_id)
            SELECT DISTINCT ON (r.requester_id) r.jurisdiction_id, r.incident_id,
                   r.requester_id, r.id
            FROM reports AS r
            WHERE r.jurisdiction_id = CAST(:j AS smallint) AND r.incident_id = :i
              AND r.requester_id IS NOT NULL
            ORDER BY r.requester_id, r.id
            ON CONFLICT (jurisdiction_id, incident_id, requester_id) DO NOTHING
            """
        ),
        {"j": jurisdiction_id, "i": incident_id},
    )


def _move_subscriptions(
    session: Session, jurisdiction_id: int, *, from_id: int, to_id: int, requester_ids: list[int]
) -> None:
    """Move these requesters' subscriptions from one incident to another."""
    session.execute(
        text(
            """
            UPDATE subscriptions SET incident_id = :to
            WHERE jurisdiction_id = CAST(:j AS smallint) AND incident_id = :from
              AND requester_id = ANY(CAST(:ids AS bigint[]))
              AND requester_id NOT IN (
                  SELECT requester_id FROM subscriptions
                  WHERE jurisdiction_id = CAST(:j AS smallint) AND incident_id = :to)
            """
        ),
        {"to": to_id, "from": from_id, "j": jurisdiction_id, "ids": requester_ids},
    )
    session.execute(
        text(
            "DELETE FROM subscriptions WHERE jurisdiction_id = CAST(:j AS smallint) "
            "AND incident_id = :from AND requester_id = ANY(CAST(:ids AS bigint[]))"
        ),
        {"from": from_id, "j": jurisdiction_id, "ids": requester_ids},
    )


def _subscribers(session: Session, jurisdiction_id: int, incident_id: int) -> set[int]:
    return set(
        session.scalars(
            text(
                "SELECT requester_id FROM subscriptions "
                "WHERE jurisdiction_id = CAST(:j AS smallint) AND incident_id = :i"
            ),
            {"j": jurisdiction_id, "i": incident_id},
        )
    )


def merge(
    session: Session,
    *,
    jurisdiction_id: int,
    into_incident_id: int,
    from_incident_id: int,
    actor: str,
    reason: str,
) -> IncidentMove:
    """Return the move that folded incident ``from`` into ``into``.

    Every report of ``from`` and every subscriber moves to ``into``; ``from`` is cancelled
    (its work order with it), with the reason. Undo with ``undo``.
    """
    if into_incident_id == from_incident_id:
        raise SameIncident(f"Incident {into_incident_id} cannot be merged into itself.")
    locked = _lock_incidents(session, jurisdiction_id, into_incident_id, from_incident_id)
    into, source = locked[into_incident_id], locked[from_incident_id]
    for incident, role in ((source, "merged"), (into, "merged into")):
        if incident.status in UNMATCHABLE_STATUSES:
            raise IncidentNotMergeable(
                f"Incident {incident.id} is {incident.status}: it cannot be {role}.",
                extra={"incident_id": incident.id, "incident_status": incident.status},
            )
    report_ids = _report_ids(session, jurisdiction_id, source.id)
    moved_subscribers = sorted(_subscribers(session, jurisdiction_id, source.id))
    already = _subscribers(session, jurisdiction_id, into.id)
    move = IncidentMove(
        jurisdiction_id=jurisdiction_id,
        kind="merge",
        from_incident_id=source.id,
        to_incident_id=into.id,
        report_ids=report_ids,
        data={
            "from_status": source.status,
            "from_closed_at": source.closed_at.isoformat() if source.closed_at else None,
            "subscribers": moved_subscribers,
            "subscribers_already_on_target": sorted(already & set(moved_subscribers)),
        },
        actor=actor,
        reason=reason,
    )
    session.add(move)
    session.flush()
    # The request residents should follow now: the target's own first one.
    parent = _first_tracking_id(session, jurisdiction_id, into.id)
    _move_reports(session, jurisdiction_id, report_ids, into.id)
    _move_subscriptions(
        session,
        jurisdiction_id,
        from_id=source.id,
        to_id=into.id,
        requester_ids=moved_subscribers,
    )
    cancel_merged_incident(
        session,
        source,
        actor=actor,
        reason=f"merged into incident {into.id}: {reason}",
        public_note=PublicNote("merged", {"parent": parent}),
        data={"move": move.id, "into": into.id, "reports": len(report_ids)},
    )
    audit.record(
        session,
        jurisdiction_id=jurisdiction_id,
        entity="incident",
        entity_id=into.id,
        action="merged_in",
        actor=actor,
        reason=reason,
        data={"move": move.id, "from": source.id, "reports": len(report_ids)},
    )
    return move


def split(
    session: Session, *, jurisdiction_id: int, tracking_id: str, actor: str, reason: str
) -> IncidentMove:
    """Return the move that took a report out of its incident into a new incident of its own.

    The report's requester follows it (and stays subscribed to the old incident when they
    have another report there). A report that had reopened a closed incident, with nothing
    reported there since, closes it again. Undo with ``undo``. The new incident's work order
    is nobody's yet: the use case gives it to a crew (``geo311.flows.split_report``).
    """
    report = session.scalars(
        select(Report).where(
            Report.jurisdiction_id == jurisdiction_id, Report.tracking_id == tracking_id.upper()
        )
    ).one_or_none()
    if report is None:
        raise ReportNotFound(f"No report has the tracking id {tracking_id!r}.")
    old = _lock_incidents(session, jurisdiction_id, report.incident_id)[report.incident_id]
    siblings = [i for i in _report_ids(session, jurisdiction_id, old.id) if i != report.id]
    if not siblings:
        raise NothingToSplit(
            f"Report {report.tracking_id} is the only report of incident {old.id}: "
            "there is nothing to split it from."
        )
    category = session.get(ServiceCategory, (jurisdiction_id, report.category_code))
    assert category is not None  # the foreign key guarantees it
    lon, lat = session.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM reports WHERE jurisdiction_id = :j AND id = :i"),
        {"j": jurisdiction_id, "i": report.id},
    ).one()
    new = incidents.open_incident(
        session,
        category=category,
        lon=lon,
        lat=lat,
        ward_id=report.ward_id,
        asset_id=report.asset_id,
        opened_at=report.reported_at,
    )
    reclose = _reclose_after_split(session, old, report)
    keeps_old = report.requester_id is not None and bool(
        session.scalar(
            select(Report.id).where(
                Report.jurisdiction_id == jurisdiction_id,
                Report.incident_id == old.id,
                Report.requester_id == report.requester_id,
                Report.id != report.id,
            )
        )
    )
    move = IncidentMove(
        jurisdiction_id=jurisdiction_id,
        kind="split",
        from_incident_id=old.id,
        to_incident_id=new.id,
        report_ids=[report.id],
        data={"requester_keeps_old": keeps_old, "reclosed": reclose},
        actor=actor,
        reason=reason,
    )
    session.add(move)
    session.flush()
    _move_reports(session, jurisdiction_id, [report.id], new.id)
    if report.requester_id is not None:
        if keeps_old:
            _subscribe_reporters(session, jurisdiction_id, new.id)
        else:
            _move_subscriptions(
                session,
                jurisdiction_id,
                from_id=old.id,
                to_id=new.id,
                requester_ids=[report.requester_id],
            )
            _subscribe_reporters(session, jurisdiction_id, new.id)
    audit.record(
        session,
        jurisdiction_id=jurisdiction_id,
        entity="incident",
        entity_id=new.id,
        action="opened",
        actor=actor,
        to_state=new.status,
        # The opening is a public update (Open311); the dispatcher's words stay in data.
        reason=f"split from incident {old.id}",
        public_note=PublicNote(
            "split_off", {"parent": _first_tracking_id(session, jurisdiction_id, old.id)}
        ),
        data={"move": move.id, "report": report.tracking_id, "from": old.id, "why": reason},
    )
    audit.record(
        session,
        jurisdiction_id=jurisdiction_id,
        entity="incident",
        entity_id=old.id,
        action="report_split_out",
        actor=actor,
        reason=reason,
        data={"move": move.id, "report": report.tracking_id, "into": new.id},
    )
    if reclose is not None:
        restore_incident_status(
            session,
            old,
            status=reclose["status"],
            closed_at=datetime.fromisoformat(reclose["closed_at"])
            if reclose["closed_at"]
            else None,
            actor=actor,
            reason=f"the report that reopened it was split out: {reason}",
            public_note=PublicNote("reclosed"),
            data={"move": move.id, "report": report.tracking_id},
        )
    return move


def _reclose_after_split(
    session: Session, incident: Incident, report: Report
) -> dict[str, Any] | None:
    """Return the status to put back when splitting out the report that reopened the incident
    (and nothing was reported there since), else None."""
    if report.dedup_decision != "reopened" or incident.status != "reopened":
        return None
    later = session.scalar(
        select(Report.id).where(
            Report.jurisdiction_id == incident.jurisdiction_id,
            Report.incident_id == incident.id,
            Report.id != report.id,
            Report.reported_at >= report.reported_at,
        )
    )
    if later is not None:
        return None
    row = session.execute(
        text(
            """
            SELECT from_state, data->>'closed_at' AS closed_at FROM audit_events
            WHERE jurisdiction_id = CAST(:j AS smallint) AND entity = 'incident'
              AND entity_id = :i AND action = 'reopened_by_report' AND data->>'report' = :t
            ORDER BY at DESC, id DESC LIMIT 1
            """
        ),
        {"j": incident.jurisdiction_id, "i": incident.id, "t": report.tracking_id},
    ).one_or_none()
    if row is None or row.from_state is None:
        return None
    return {"status": row.from_state, "closed_at": row.closed_at}


def undo(
    session: Session, *, jurisdiction_id: int, move_id: int, actor: str, reason: str
) -> IncidentMove:
    """Return the move, undone: reports, subscribers and statuses back as they were.

    Raises MoveNotUndoable when it was undone already, or when what it moved has moved on
    since (a report moved again, the cancelled incident revived, the split-off incident got
    reports of its own).
    """
    move = get_move(session, jurisdiction_id=jurisdiction_id, move_id=move_id)
    if move.undone_at is not None:
        raise MoveNotUndoable(f"Move {move.id} was undone already, by {move.undone_by}.")
    locked = _lock_incidents(session, jurisdiction_id, move.from_incident_id, move.to_incident_id)
    source, target = locked[move.from_incident_id], locked[move.to_incident_id]
    still_there = set(_report_ids(session, jurisdiction_id, target.id))
    if not set(move.report_ids) <= still_there:
        raise MoveNotUndoable(
            f"Some reports of move {move.id} are no longer in incident {target.id}."
        )
    if move.kind == "merge":
        _undo_merge(session, move, source, target, actor, reason)
    else:
        _undo_split(session, move, source, target, still_there, actor, reason)
    move.undone_at = session.execute(text("SELECT now()")).scalar_one()
    move.undone_by = actor
    move.undo_reason = reason
    session.flush()
    return move


def _undo_merge(
    session: Session,
    move: IncidentMove,
    source: Incident,
    target: Incident,
    actor: str,
    reason: str,
) -> None:
    jid = move.jurisdiction_id
    if source.status != "cancelled":
        raise MoveNotUndoable(
            f"Incident {source.id} is {source.status} now, no longer cancelled by the merge."
        )
    if target.status in UNMATCHABLE_STATUSES:
        raise MoveNotUndoable(f"Incident {target.id} is {target.status} now.")
    _move_reports(session, jid, list(move.report_ids), source.id)
    already = set(move.data["subscribers_already_on_target"])
    moved = [s for s in move.data["subscribers"] if s not in already]
    _move_subscriptions(session, jid, from_id=target.id, to_id=source.id, requester_ids=moved)
    _subscribe_reporters(session, jid, source.id)
    _subscribe_reporters(session, jid, target.id)
    closed_at = move.data.get("from_closed_at")
    restore_incident_status(
        session,
        source,
        status=move.data["from_status"],
        closed_at=datetime.fromisoformat(closed_at) if closed_at else None,
        actor=actor,
        reason=f"merge into incident {target.id} undone: {reason}",
        public_note=PublicNote("merge_undone"),
        data={"move": move.id},
    )
    audit.record(
        session,
        jurisdiction_id=jid,
        entity="incident",
        entity_id=target.id,
        action="merge_undone",
        actor=actor,
        to_state=target.status,
        reason=reason,
        public_note=PublicNote("reports_separated"),
        data={"move": move.id, "from": source.id, "reports": len(move.report_ids)},
    )


def _undo_split(
    session: Session,
    move: IncidentMove,
    old: Incident,
    new: Incident,
    in_new: set[int],
    actor: str,
    reason: str,
) -> None:
    jid = move.jurisdiction_id
    if in_new != set(move.report_ids):
        raise MoveNotUndoable(
            f"Incident {new.id} has reports of its own since the split; merge it instead."
        )
    if old.status in UNMATCHABLE_STATUSES:
        raise MoveNotUndoable(f"Incident {old.id} is {old.status} now.")
    _move_reports(session, jid, list(move.report_ids), old.id)
    requesters = [
        r
        for r in session.scalars(
            select(Report.requester_id).where(
                Report.jurisdiction_id == jid, Report.id.in_(move.report_ids)
            )
        )
        if r is not None
    ]
    _move_subscriptions(session, jid, from_id=new.id, to_id=old.id, requester_ids=requesters)
    _subscribe_reporters(session, jid, old.id)
    reclose = move.data.get("reclosed")
    if reclose is not None and old.status == reclose["status"]:
        reopen_incident(
            session,
            old,
            actor=actor,
            reason=f"split undone: its report is back: {reason}",
            public_note=PublicNote("report_back"),
            data={"move": move.id},
        )
    cancel_merged_incident(
        session,
        new,
        actor=actor,
        reason=f"split from incident {old.id} undone: {reason}",
        public_note=PublicNote("merged_back", {"parent": _first_tracking_id(session, jid, old.id)}),
        data={"move": move.id, "into": old.id},
    )
    audit.record(
        session,
        jurisdiction_id=jid,
        entity="incident",
        entity_id=old.id,
        action="split_undone",
        actor=actor,
        reason=reason,
        data={"move": move.id, "from": new.id},
    )
