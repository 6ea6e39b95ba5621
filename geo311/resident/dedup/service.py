"""Dedup in the database: find candidate incidents, place a new report (match, reopen or open),
and the dispatchers' merge, split and undo.

Plain functions, the session first and keyword-only arguments; they flush, never commit.
Distances are metres on the WGS84 spheroid (PostGIS geography).

Concurrency: before it looks for candidates, a report takes transaction-scoped advisory locks
on the grid cells its radius touches (``grid.lock_keys``), so two reports that could match
each other run one after the other and the second sees the first's incident. A chosen
incident is then locked (``FOR UPDATE``) and re-checked, so a merge or a status change that
commits in between is never missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import grid
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
    Candidate,
    Decision,
    NewReport,
    Rule,
    decide,
    normalise_address,
    normalise_addresses,
    rule_for,
)
from geo311.resident.intake.models import Report
from geo311.resident.intake.schemas import PointGeoJSON
from work_orders import audit, lifecycle
from work_orders import service as work_orders_service
from work_orders.models import Incident, ServiceCategory, WorkOrder
from work_orders.public_notes import PublicNote

# How often a report re-decides when the incident it chose changed under it (merged away,
# closed) between the search and the row lock. Each retry sees the newer state.
_MAX_ATTEMPTS = 3


# --- rules ---------------------------------------------------------------


def rule_of(category: ServiceCategory, settings: DedupSettings) -> Rule:
    """Return the dedup rule of a category: its own settings over the global defaults."""
    return rule_for(
        settings,
        radius_m=category.dedup_radius_m,
        enabled=category.dedup_enabled,
        threshold=category.dedup_threshold,
        open_window_h=category.dedup_open_window_h,
        reopen_window_h=category.dedup_reopen_window_h,
        weights=category.dedup_weights or None,
    )


# --- candidates ---------------------------------------------------------------

# Index-backed: the degree box (a little larger than the disk) and the closing time are both
# index conditions on ix_incidents_geom_closed (geom, closed-or-infinity), so incidents closed
# long ago are skipped inside the index; ST_DWithin on geography then keeps what is within the
# radius in real metres (inclusive); ix_incidents_asset serves the same-asset search. The
# per-incident aggregates read only the few candidates' reports (ix_reports_incident,
# ix_photos_report).
_CANDIDATES = text(
    """
    WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS g),
    -- The categories of the group whose dedup is on: candidates come only from those.
    codes AS (
        SELECT c.code FROM service_categories AS c
        WHERE c.jurisdiction_id = CAST(:jid AS smallint) AND c.group_code = :group_code
          AND c.active AND c.dedup_enabled
    ),
    found AS (
        SELECT i.id
        FROM incidents AS i
        WHERE i.geom && ST_MakeEnvelope(:min_lon, :min_lat, :max_lon, :max_lat, 4326)
          AND ST_DWithin(i.geom::geography,
                         ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :radius_m)
          AND COALESCE(i.closed_at, 'infinity'::timestamptz) >= :closed_since
          AND i.jurisdiction_id = CAST(:jid AS smallint)
          AND i.category_code IN (SELECT code FROM codes)
          AND i.status <> ALL (CAST(:unmatchable AS text[]))
        UNION
        SELECT i.id
        FROM incidents AS i
        WHERE CAST(:asset_id AS bigint) IS NOT NULL
          AND i.jurisdiction_id = CAST(:jid AS smallint)
          AND i.asset_id = CAST(:asset_id AS bigint)
          AND i.category_code IN (SELECT code FROM codes)
          AND COALESCE(i.closed_at, 'infinity'::timestamptz) >= :closed_since
          AND i.status <> ALL (CAST(:unmatchable AS text[]))
    )
    SELECT i.id, i.category_code, i.status, i.asset_id, i.opened_at, i.closed_at, i.updated_at,
           ST_Distance(i.geom::geography, p.g) AS distance_m,
           agg.last_report_at, agg.nearest_report_id, agg.addresses, agg.photo_hashes
    FROM found
    JOIN incidents AS i ON i.jurisdiction_id = CAST(:jid AS smallint) AND i.id = found.id
    CROSS JOIN p
    CROSS JOIN LATERAL (
        SELECT max(r.reported_at) AS last_report_at,
               (array_agg(r.id ORDER BY ST_Distance(r.geom::geography, p.g), r.id))[1]
                   AS nearest_report_id,
               (array_agg(DISTINCT r.address) FILTER (WHERE r.address IS NOT NULL))[1:50]
                   AS addresses,
               (array_agg(ph.phash ORDER BY r.id) FILTER (WHERE ph.phash IS NOT NULL))[1:50]
                   AS photo_hashes
        FROM reports AS r
        LEFT JOIN LATERAL (
            SELECT x.phash FROM photos AS x
            WHERE x.jurisdiction_id = r.jurisdiction_id AND x.report_id = r.id
              AND x.kind = 'report'
            ORDER BY x.id LIMIT 1
        ) AS ph ON true
        WHERE r.jurisdiction_id = CAST(:jid AS smallint) AND r.incident_id = i.id
    ) AS agg
    """
)


def find_candidates(
    session: Session,
    *,
    jurisdiction_id: int,
    group_code: str,
    lon: float,
    lat: float,
    radius_m: float,
    asset_id: int | None,
    closed_since: datetime,
) -> list[Candidate]:
    """Return the incidents of the group's categories (those whose dedup is on) within
    ``radius_m`` metres of (lon, lat) (inclusive) or on asset ``asset_id``, not cancelled, and
    open or closed since ``closed_since``."""
    min_lon, min_lat, max_lon, max_lat = grid.degree_box(lon, lat, radius_m)
    rows = session.execute(
        _CANDIDATES,
        {
            "min_lon": min_lon,
            "min_lat": min_lat,
            "max_lon": max_lon,
            "max_lat": max_lat,
            "jid": jurisdiction_id,
            "group_code": group_code,
            "lon": lon,
            "lat": lat,
            "radius_m": radius_m,
            "asset_id": asset_id,
            "closed_since": closed_since,
            "unmatchable": list(UNMATCHABLE_STATUSES),
        },
    ).all()
    return [
        Candidate(
            incident_id=row.id,
            category_code=row.category_code,
            status=row.status,
            distance_m=float(row.distance_m),
            last_report_at=row.last_report_at or row.opened_at,
            closed_at=row.closed_at
            or (row.updated_at if row.status in ("completed", "closed") else None),
            asset_id=row.asset_id,
            addresses=normalise_addresses(row.addresses or []),
            photo_hashes=tuple(row.photo_hashes or ()),
            nearest_report_id=row.nearest_report_id,
        )
        for row in rows
    ]


def _lock_area(session: Session, keys: list[int]) -> None:
    """Take the advisory locks, in the order given (sorted), until the transaction ends."""
    # A function scan yields the array in order, so the locks are taken in that order.
    session.execute(
        text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": keys},
    )


# --- placing a new report ---------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a new report goes: the incident, whether it was opened for it, and why."""

    incident: Incident
    decision: Decision
    opened: bool

    def report_fields(self) -> dict[str, Any]:
        """Return the dedup columns of the report (decision, score, signals, matched report)."""
        best = self.decision.best
        joined = self.decision.incident_id is not None
        return {
            "dedup_decision": self.decision.kind,
            "dedup_score": None if best is None else round(best.score, 4),
            "dedup_signals": self.decision.as_json(),
            "matched_report_id": best.candidate.nearest_report_id if joined and best else None,
        }


def place_report(
    session: Session,
    *,
    category: ServiceCategory,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    address: str | None,
    photo_hash: str | None,
    now: datetime,
    settings: DedupSettings,
) -> Placement:
    """Return where a new report goes: an existing incident it duplicates, or a new one.

    Call ``attach_report`` once the report is stored. Takes the area's advisory locks, so the
    caller's transaction must end soon after (the route commits).
    """
    matcher = Matcher.start(
        session,
        category=category,
        lon=lon,
        lat=lat,
        asset_id=asset_id,
        address=address,
        photo_hash=photo_hash,
        now=now,
        settings=settings,
    )
    if not matcher.rule.enabled:
        return _open(session, category, lon, lat, ward_id, asset_id, now, matcher.decide(session))
    decision = matcher.decide(session)
    for _ in range(_MAX_ATTEMPTS):
        incident_id = decision.incident_id
        if incident_id is None or decision.best is None:
            break
        incident = session.get(
            Incident,
            (category.jurisdiction_id, incident_id),
            with_for_update=True,
            populate_existing=True,
        )
        if incident is not None and incident.status == decision.best.candidate.status:
            return Placement(incident=incident, decision=decision, opened=False)
        # It changed between the search and the lock (merged away, closed): decide again.
        decision = matcher.decide(session)
    return _open(session, category, lon, lat, ward_id, asset_id, now, decision)


@dataclass(frozen=True)
class Matcher:
    """The matching step for one new report: its rule, the area locked, and what it is."""

    jurisdiction_id: int
    group_code: str
    rule: Rule
    lon: float
    lat: float
    new: NewReport
    closed_since: datetime

    @classmethod
    def start(
        cls,
        session: Session,
        *,
        category: ServiceCategory,
        lon: float,
        lat: float,
        asset_id: int | None,
        address: str | None,
        photo_hash: str | None,
        now: datetime,
        settings: DedupSettings,
    ) -> Matcher:
        """Return the matcher for a report, holding the advisory locks of its area (until
        the transaction ends) when its category dedups."""
        rule = rule_of(category, settings)
        if rule.enabled:
            _lock_area(
                session,
                grid.lock_keys(
                    jurisdiction_id=category.jurisdiction_id,
                    group_code=category.group_code,
                    lon=lon,
                    lat=lat,
                    radius_m=rule.radius_m,
                    cell_m=settings.lock_cell_m,
                    asset_id=asset_id,
                ),
            )
        return cls(
            jurisdiction_id=category.jurisdiction_id,
            group_code=category.group_code,
            rule=rule,
            lon=lon,
            lat=lat,
            new=NewReport(
                category_code=category.code,
                at=now,
                asset_id=asset_id,
                address=normalise_address(address),
                photo_hash=photo_hash,
            ),
            closed_since=now - timedelta(hours=rule.reopen_window_h),
        )

    def decide(self, session: Session) -> Decision:
        """Return the decision from the candidates stored now."""
        if not self.rule.enabled:
            return decide_off(self.rule)
        candidates = find_candidates(
            session,
            jurisdiction_id=self.jurisdiction_id,
            group_code=self.group_code,
            lon=self.lon,
            lat=self.lat,
            radius_m=self.rule.radius_m,
            asset_id=self.new.asset_id,
            closed_since=self.closed_since,
        )
        return decide(self.new, candidates, self.rule, self.new.at)


def decide_off(rule: Rule) -> Decision:
    """Return the decision for a category whose dedup is switched off."""
    return Decision(kind="off", threshold=rule.threshold, radius_m=rule.radius_m)


def _open(
    session: Session,
    category: ServiceCategory,
    lon: float,
    lat: float,
    ward_id: int | None,
    asset_id: int | None,
    now: datetime,
    decision: Decision,
) -> Placement:
    incident = work_orders_service.open_incident(
        session,
        category=category,
        lon=lon,
        lat=lat,
        ward_id=ward_id,
        asset_id=asset_id,
        opened_at=now,
    )
    if decision.kind == "off":
        return Placement(incident=incident, decision=decision, opened=True)
    new_decision = Decision(
        kind="new",
        threshold=decision.threshold,
        radius_m=decision.radius_m,
        best=decision.best,
        candidates=decision.candidates,
    )
    return Placement(incident=incident, decision=new_decision, opened=True)


def attach_report(session: Session, *, placement: Placement, report: Report, actor: str) -> None:
    """Record a stored report joining an existing incident: reopen it when it was closed, and
    write the audit event. Does nothing for a report that opened its incident."""
    if placement.opened:
        return
    incident = placement.incident
    best = placement.decision.best
    assert best is not None
    data = {"report": report.tracking_id, "score": round(best.score, 4), "fired": best.fired}
    if placement.decision.kind == "reopened":
        _reopen_incident(
            session,
            incident,
            actor=actor,
            reason=(
                f"report {report.tracking_id} came {best.candidate.distance_m:.0f} m away, "
                f"{best.signals['age_h']:.1f} h after the incident closed"
            ),
            public_note=PublicNote("reopened_reported_again"),
            data=data,
        )
    audit.record(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="report_added",
        actor=actor,
        reason=f"duplicate detected ({placement.decision.kind})",
        data=data,
    )


# Dedup's own audit events carry no to_state: the Open311 update feed treats an event with a
# to_state as a public status update, and adding, merging or splitting reports changes no status.

# --- status changes: through the work-order lifecycle ---------------------------------------------
#
# Reopening and cancelling go through work_orders' transition, which checks the move, moves the
# incident's work order with it (a merged-away incident's work order is cancelled too) and writes
# the audit event. Dedup adds its own context as a second event.


def _reopen_incident(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    reason: str,
    public_note: PublicNote,
    data: dict[str, Any],
) -> None:
    """Reopen a closed incident that got a new report inside the reopen window."""
    closed_at = incident.closed_at
    from_state = incident.status
    work_orders_service.transition(
        session,
        incident_or_work_order=incident,
        to="reopened",
        actor=actor,
        reason=reason,
        public_note=public_note,
    )
    # What a split of this report needs to put the incident back as it was.
    _dedup_context(
        session,
        incident,
        actor=actor,
        action="reopened_by_report",
        from_state=from_state,
        data={**data, "closed_at": closed_at.isoformat() if closed_at else None},
    )


def _cancel_merged_incident(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    reason: str,
    public_note: PublicNote,
    data: dict[str, Any],
) -> None:
    """Cancel an incident merged into another (or emptied by an undone split), with its work
    order. One already finished keeps its status: there is no work left to cancel."""
    if incident.status not in lifecycle.FINISHED:
        work_orders_service.transition(
            session,
            incident_or_work_order=incident,
            to="cancelled",
            actor=actor,
            reason=reason,
            public_note=public_note,
        )
    _dedup_context(session, incident, actor=actor, action="merged_away", data=data)


def _dedup_context(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    action: str,
    data: dict[str, Any],
    from_state: str | None = None,
) -> None:
    # No to_state: the status change itself is the lifecycle's event; this one only adds why.
    audit.record(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action=action,
        actor=actor,
        from_state=from_state,
        data=data,
    )


def _restore_incident_status(
    session: Session,
    incident: Incident,
    *,
    status: str,
    closed_at: datetime | None,
    actor: str,
    reason: str,
    public_note: PublicNote,
    data: dict[str, Any],
) -> None:
    """An undo puts an incident (and its work order, which moves in step) back in the status
    it had before the move. This is an administrative restore, outside the lifecycle's table
    (cancelled -> new is not a move anyone else may make), and audited as such."""
    from_state = incident.status
    incident.status = status
    incident.closed_at = closed_at
    incident.version = incident.version + 1
    session.execute(
        update(WorkOrder)
        .where(
            WorkOrder.jurisdiction_id == incident.jurisdiction_id,
            WorkOrder.incident_id == incident.id,
        )
        .values(status=status, version=WorkOrder.version + 1)
    )
    session.flush()
    audit.record(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="status_restored",
        actor=actor,
        from_state=from_state,
        to_state=status,
        reason=reason,
        public_note=public_note,
        data=data,
    )


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
    _cancel_merged_incident(
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
    new = work_orders_service.open_incident(
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
        _restore_incident_status(
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
    _restore_incident_status(
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
        _reopen_incident(
            session,
            old,
            actor=actor,
            reason=f"split undone: its report is back: {reason}",
            public_note=PublicNote("report_back"),
            data={"move": move.id},
        )
    _cancel_merged_incident(
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
