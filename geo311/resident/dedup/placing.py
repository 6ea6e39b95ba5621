"""Duplicates at intake: the category's rule, the candidates near a new report, and matching
it to the incident it is about (or to none: intake then opens one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import grid, learning
from geo311.resident.dedup.scoring import (
    UNMATCHABLE_STATUSES,
    Candidate,
    Decision,
    NewReport,
    PairScorer,
    Rule,
    decide,
    normalise_address,
    normalise_addresses,
    rule_for,
)
from geo311.resident.dedup.status import reopen_incident
from geo311.resident.intake.models import Report
from work_orders import audit
from work_orders.models import Incident, ServiceCategory
from work_orders.public_notes import PublicNote

# How often a report re-decides when the incident it chose changed under it (merged away,
# closed) between the search and the row lock. Each retry sees the newer state.
_MAX_ATTEMPTS = 3


# --- rules ---------------------------------------------------------------


def rule_of(
    category: ServiceCategory, settings: DedupSettings, model: PairScorer | None = None
) -> Rule:
    """Return the dedup rule of a category: its own settings over the global defaults, or
    its fitted model (learning.load_model) when it has one."""
    return rule_for(
        settings,
        radius_m=category.dedup_radius_m,
        enabled=category.dedup_enabled,
        threshold=category.dedup_threshold,
        open_window_h=category.dedup_open_window_h,
        reopen_window_h=category.dedup_reopen_window_h,
        weights=category.dedup_weights or None,
        model=model,
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
           agg.last_report_at, agg.nearest_report_id, agg.addresses, agg.photo_hashes,
           agg.descriptions
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
                   AS photo_hashes,
               -- The newest 20, as the importer keeps them: fitted models compare them.
               (array_agg(r.description ORDER BY r.id DESC)
                   FILTER (WHERE r.description <> ''))[1:20] AS descriptions
        FROM reports AS r
        LEFT JOIN LATERAL (
            SELECT x.phash FROM photos AS x
            -- The city as a constant, not r's: Citus routes a LIMIT subquery only by its own
            -- filter on jurisdiction_id.
            WHERE x.jurisdiction_id = CAST(:jid AS smallint) AND x.report_id = r.id
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
            descriptions=tuple(row.descriptions or ()),
        )
        for row in rows
    ]


_LOCK = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")


def _lock_area(session: Session, keys: list[int]) -> None:
    """Take the advisory locks, in the order given (sorted), until the transaction ends."""
    # A function scan yields the array in order, so the locks are taken in that order.
    session.connection().execute(_LOCK, {"keys": keys})


# --- placing a new report ---------------------------------------------------------------


@dataclass(frozen=True)
class IncomingReport:
    """A new report as dedup weighs it: its category, where and when it was made, and what
    it carries (the snapped asset, the address as typed, the photo's hash, the text)."""

    category: ServiceCategory
    lon: float
    lat: float
    at: datetime
    asset_id: int | None = None
    address: str | None = None
    photo_hash: str | None = None
    description: str | None = None


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


@dataclass(frozen=True)
class Match:
    """What a new report is: a duplicate of ``incident`` (locked, ``FOR UPDATE``), or, with
    no incident, a new problem (``decision`` then says "new" or "off")."""

    decision: Decision
    incident: Incident | None
    # The reports ``incident`` had before this one.
    report_count: int = 0


def match_report(
    session: Session,
    *,
    report: IncomingReport,
    settings: DedupSettings,
    model: learning.PairModel | Literal["load"] | None = "load",
) -> Match:
    """Return the incident a new report duplicates, locked, or none (the caller opens one).

    ``model``: the category's fitted model when the caller read it with the category
    (``learning.model_column``), or "load". Three statements when the category dedups: the
    area's advisory locks, the candidate search, and the chosen incident's row lock (when
    one is chosen). The lock and the search stay two statements: a statement reads from the
    snapshot taken when it began, so a search in the statement that waited for the lock
    would miss the incident the lock's previous holder just committed, and open a second
    incident for one pothole. Takes the area's advisory locks, so the caller's transaction
    must end soon after."""
    matcher = Matcher.start(session, report=report, settings=settings, model=model)
    decision = matcher.decide(session)
    if not matcher.rule.enabled:
        return Match(decision=decision, incident=None)
    for _ in range(_MAX_ATTEMPTS):
        incident_id = decision.incident_id
        if incident_id is None or decision.best is None:
            break
        jid = report.category.jurisdiction_id
        # The row lock, with how many reports the incident has (the answer shows it).
        reports = (
            select(func.count())
            .select_from(Report)
            .where(Report.jurisdiction_id == jid, Report.incident_id == incident_id)
            .scalar_subquery()
        )
        row = session.execute(
            select(Incident, reports)
            .where(Incident.jurisdiction_id == jid, Incident.id == incident_id)
            .with_for_update(of=Incident)
            .execution_options(populate_existing=True)
        ).one_or_none()
        if row is not None and row[0].status == decision.best.candidate.status:
            return Match(decision=decision, incident=row[0], report_count=int(row[1]))
        # It changed between the search and the lock (merged away, closed): decide again.
        decision = matcher.decide(session)
    return Match(decision=_as_new(decision), incident=None)


def _as_new(decision: Decision) -> Decision:
    """Return the decision to open a new incident, keeping what was weighed."""
    return Decision(
        kind="new",
        threshold=decision.threshold,
        radius_m=decision.radius_m,
        best=decision.best,
        candidates=decision.candidates,
    )


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
        report: IncomingReport,
        settings: DedupSettings,
        model: learning.PairModel | Literal["load"] | None = "load",
    ) -> Matcher:
        """Return the matcher for a report, holding the advisory locks of its area (until
        the transaction ends) when its category dedups."""
        category = report.category
        if model == "load":
            model = learning.load_model(
                session, jurisdiction_id=category.jurisdiction_id, category_code=category.code
            )
        rule = rule_of(category, settings, model)
        if rule.enabled:
            _lock_area(
                session,
                grid.lock_keys(
                    jurisdiction_id=category.jurisdiction_id,
                    group_code=category.group_code,
                    lon=report.lon,
                    lat=report.lat,
                    radius_m=rule.radius_m,
                    cell_m=settings.lock_cell_m,
                    asset_id=report.asset_id,
                ),
            )
        return cls(
            jurisdiction_id=category.jurisdiction_id,
            group_code=category.group_code,
            rule=rule,
            lon=report.lon,
            lat=report.lat,
            new=NewReport(
                category_code=category.code,
                at=report.at,
                asset_id=report.asset_id,
                address=normalise_address(report.address),
                photo_hash=report.photo_hash,
                description=report.description,
            ),
            closed_since=report.at - timedelta(hours=rule.reopen_window_h),
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


def joined_event(
    session: Session, *, incident: Incident, decision: Decision, tracking_id: str, actor: str
) -> dict[str, Any]:
    """Return the audit row (``AuditEvent`` columns) of report ``tracking_id`` joining
    ``incident``, for the caller to insert with the report; reopen the incident first when
    the decision says so (the lifecycle's own statements, flushed)."""
    best = decision.best
    assert best is not None
    data = {"report": tracking_id, "score": round(best.score, 4), "fired": best.fired}
    if decision.kind == "reopened":
        reopen_incident(
            session,
            incident,
            actor=actor,
            reason=(
                f"report {tracking_id} came {best.candidate.distance_m:.0f} m away, "
                f"{best.signals['age_h']:.1f} h after the incident closed"
            ),
            public_note=PublicNote("reopened_reported_again"),
            data=data,
        )
        session.flush()
    return audit.row(
        session,
        jurisdiction_id=incident.jurisdiction_id,
        entity="incident",
        entity_id=incident.id,
        action="report_added",
        actor=actor,
        reason=f"duplicate detected ({decision.kind})",
        data=data,
    )
