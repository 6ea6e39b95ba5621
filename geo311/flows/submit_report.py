"""A resident reports a problem (report API, report page or an Open311 app): intake stores
it, joining or opening an incident, and dispatch assigns an incident it opened."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from dispatch import assignment
from geo311.kernel.errors import NotFound
from geo311.kernel.media.photos import ProcessedPhoto
from geo311.kernel.media.store import MediaStore
from geo311.kernel.media.uploads import process_upload
from geo311.kernel.settings import DedupSettings, MediaSettings, Settings
from geo311.resident.intake import service as intake_service
from geo311.resident.intake.service import ReportDraft, Submitted
from geo311.resident.open311 import service as open311_service
from geo311.resident.open311.schemas import PostedRequestOut
from layers import service as layers_service


@dataclass(frozen=True)
class Served:
    """The jurisdiction a report is filed in: its id and slug."""

    id: int
    slug: str


# Per process, per database: the slug → id of the jurisdictions found. geo311 never changes a
# jurisdiction's slug or id, nor deletes one, so an entry cannot go stale while its database
# lives; a miss is not kept (a city loaded after the server started is found).
_SERVED: dict[tuple[URL, str], Served] = {}
_SERVED_LOCK = threading.Lock()


def served_jurisdiction(session: Session, slug: str) -> Served:
    """Return the jurisdiction with this slug (read once per process and database), or raise
    NotFound when it is not loaded."""
    key = (session.get_bind().engine.url, slug)
    with _SERVED_LOCK:
        found = _SERVED.get(key)
    if found is not None:
        return found
    jurisdiction = layers_service.get_jurisdiction(session, slug)
    if jurisdiction is None:
        raise NotFound(f"Jurisdiction {slug!r} is not loaded yet: load wards first.")
    found = Served(id=jurisdiction.id, slug=jurisdiction.slug)
    with _SERVED_LOCK:
        _SERVED[key] = found
    return found


def submit(
    session: Session,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    draft: ReportDraft,
    photo: bytes | ProcessedPhoto | None,
    media: MediaStore,
    media_settings: MediaSettings,
    now: datetime,
    dedup_settings: DedupSettings | None = None,
    default_service_s: int | None = None,
) -> Submitted:
    """Return the stored report with what its view shows (``intake.service.shown_view``
    answers from it), and the incident it opened, if it opened one.

    1. intake places it (ward, asset), and dedup joins it to the incident it is about or
       opens a new one, whose work order is written already with the crew dispatch's rules
       chose; it stores the report, its requester's subscription and its photo (see
       ``intake.service.submit_report``);
    2. should the rules have found no crew, dispatch queues the work order for a dispatcher
       with the reason.

    ``photo``: decode it with :func:`decode_photo` before the session opens (bytes are
    decoded here, holding the session's connection while they wait for decode memory).

    ``default_service_s``: seconds on site for a category with no service time (None: the
    routing setting's default). Flushes only; the caller commits.
    """
    submitted = intake_service.submit_report(
        session,
        jurisdiction_id=jurisdiction_id,
        jurisdiction_slug=jurisdiction_slug,
        draft=draft,
        photo=photo,
        media=media,
        media_settings=media_settings,
        now=now,
        dedup_settings=dedup_settings,
        choose=assignment.chooser(default_service_s=default_service_s),
    )
    if submitted.opened is not None and submitted.opened.status == "new":
        assignment.assign_opened(
            session, incident=submitted.opened, default_service_s=default_service_s
        )
        # Assigned after opening, or queued: the view shows the status it has now.
        if submitted.shown is not None:
            submitted = replace(
                submitted,
                shown=replace(
                    submitted.shown,
                    status=submitted.opened.status,
                    updated_at=submitted.opened.updated_at,
                ),
            )
    return submitted


def submit_open311_request(
    session: Session,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    api_key_id: int,
    fields: Mapping[str, str],
    attributes: Mapping[str, Sequence[str]],
    photo: bytes | None,
    media: MediaStore,
    settings: Settings,
    now: datetime,
    more_photos: Sequence[bytes] = (),
) -> PostedRequestOut:
    """Return the id and token of an Open311 request.

    1. Open311 checks the request in its own terms and stores it through intake (as
       :func:`submit` above: placed, joined or opened with its crew, stored with its
       photos);
    2. should the rules have found no crew, dispatch queues the work order with the reason.

    Flushes only; the caller commits.
    """
    posted = open311_service.submit_request(
        session,
        jurisdiction_id=jurisdiction_id,
        jurisdiction_slug=jurisdiction_slug,
        api_key_id=api_key_id,
        fields=fields,
        attributes=attributes,
        photo=photo,
        more_photos=more_photos,
        media=media,
        settings=settings,
        now=now,
        choose=assignment.chooser(default_service_s=settings.routing.default_service_s),
    )
    if posted.opened is not None and posted.opened.status == "new":
        assignment.assign_opened(
            session,
            incident=posted.opened,
            default_service_s=settings.routing.default_service_s,
        )
    return posted.answer


def decode_photo(photo: bytes | None, media_settings: MediaSettings) -> ProcessedPhoto | None:
    """Return the decoded photo (None without one), or raise the photo's 4xx error.

    Call it before a database session opens: a decode may wait for the process's decode
    memory, and it must not hold a pooled connection while it waits."""
    return process_upload(photo, media_settings) if photo else None
