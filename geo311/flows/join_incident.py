"""A resident files their report as one more report of an open incident they found near their
pin ("This is my problem — follow it" on the report page): intake stores it, and dedup's move
machinery puts it into that incident, audited and undoable like a dispatcher's merge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geo311.kernel.errors import Conflict
from geo311.kernel.media.photos import ProcessedPhoto
from geo311.kernel.media.store import MediaStore
from geo311.kernel.settings import DedupSettings, MediaSettings
from geo311.resident.dedup import learning, moves, placing, scoring
from geo311.resident.dedup.errors import ReportNotFound
from geo311.resident.dedup.models import IncidentMove
from geo311.resident.intake import service as intake_service
from geo311.resident.intake.models import Report
from geo311.resident.intake.service import ReportDraft
from work_orders import categories as category_service


class NotJoinable(Conflict):
    code = "not_joinable"
    title = "The report cannot join that request"


@dataclass(frozen=True)
class Joined:
    """The stored report, now in the followed request's incident, and the moves that put it
    there (none when dedup had put it there itself)."""

    report: Report
    incident_id: int
    moves: tuple[IncidentMove, ...]


def join_incident(
    session: Session,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    follow_tracking_id: str,
    draft: ReportDraft,
    photo: bytes | ProcessedPhoto | None,
    media: MediaStore,
    media_settings: MediaSettings,
    now: datetime,
    dedup_settings: DedupSettings | None = None,
) -> Joined:
    """Return the resident's report, stored and joined to the incident of request
    ``follow_tracking_id``; its requester (when they left an e-mail or phone) is subscribed
    to that incident.

    1. intake stores the report as any report (``intake.service.submit_report``): dedup may
       already join it to the followed incident, or open a new one, or join another;
    2. the followed incident must be one the report page may offer for this report: open,
       of the category's group, within the category's dedup radius and open window (the rule
       ``maps.nearby`` lists by), else NotJoinable (409) and the caller rolls back;
    3. dedup's moves take the report there: an incident it opened is merged into the
       followed one (so nobody is assigned to it); a report dedup joined to another
       incident is split out of it first. No crew is ever given the incident it leaves,
       which the merge cancels. Each move is a dispatcher-visible, undoable move
       whose actor is the resident's channel.

    Flushes only; the caller commits (and on any error rolls back: nothing is stored).
    """
    settings = dedup_settings or DedupSettings()
    wanted = session.execute(
        select(Report.tracking_id, Report.incident_id).where(
            Report.jurisdiction_id == jurisdiction_id,
            Report.tracking_id == follow_tracking_id.strip().upper(),
        )
    ).one_or_none()
    if wanted is None:
        raise ReportNotFound(f"No report has the tracking id {follow_tracking_id!r}.")
    followed, target_id = wanted.tracking_id, wanted.incident_id

    submitted = intake_service.submit_report(
        session,
        jurisdiction_id=jurisdiction_id,
        jurisdiction_slug=jurisdiction_slug,
        draft=draft,
        photo=photo,
        media=media,
        media_settings=media_settings,
        now=now,
        dedup_settings=settings,
    )
    report = submitted.report
    _check_joinable(
        session,
        jurisdiction_id=jurisdiction_id,
        report=report,
        target_id=target_id,
        followed=followed,
        settings=settings,
        now=now,
    )
    actor = f"resident:{draft.channel}"
    reason = f"the resident chose to follow request {followed}"
    done: list[IncidentMove] = []
    if report.incident_id != target_id:
        if submitted.opened is None:
            # Dedup joined it to another incident: take it out of that one first.
            split = moves.split(
                session,
                jurisdiction_id=jurisdiction_id,
                tracking_id=report.tracking_id,
                actor=actor,
                reason=reason,
            )
            done.append(split)
            source_id = split.to_incident_id
        else:
            source_id = submitted.opened.id
        done.append(
            moves.merge(
                session,
                jurisdiction_id=jurisdiction_id,
                into_incident_id=target_id,
                from_incident_id=source_id,
                actor=actor,
                reason=reason,
            )
        )
    session.refresh(report)
    return Joined(report=report, incident_id=target_id, moves=tuple(done))


def _check_joinable(
    session: Session,
    *,
    jurisdiction_id: int,
    report: Report,
    target_id: int,
    followed: str,
    settings: DedupSettings,
    now: datetime,
) -> None:
    """Raise NotJoinable unless the followed incident is one the report could be about."""
    category = category_service.get_category(
        session, jurisdiction_id=jurisdiction_id, code=report.category_code
    )
    assert category is not None  # intake checked it
    # The rule intake decides by: the category's fitted model when it has one.
    model = learning.load_model(
        session, jurisdiction_id=jurisdiction_id, category_code=category.code
    )
    rule = placing.rule_of(category, settings, model)
    lon, lat = session.execute(
        select(func.ST_X(Report.geom), func.ST_Y(Report.geom)).where(
            Report.jurisdiction_id == jurisdiction_id, Report.id == report.id
        )
    ).one()
    candidates = placing.find_candidates(
        session,
        jurisdiction_id=jurisdiction_id,
        group_code=category.group_code,
        lon=lon,
        lat=lat,
        radius_m=rule.radius_m,
        asset_id=None,
        closed_since=now,
    )
    live = {c.incident_id for c in candidates if not c.closed and scoring.is_live(c, rule, now)}
    if not rule.enabled or target_id not in live:
        raise NotJoinable(
            f"Request {followed} is not an open {category.group_code.replace('_', ' ')} "
            f"problem within {rule.radius_m:g} m of this report's place, so this report "
            "cannot join it; send it on its own instead.",
            extra={"follow": followed},
        )
