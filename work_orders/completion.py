"""Completing a work order: the crew's after-photo, note and resolution code, checked,
stored, and the work order moved to ``completed`` (which closes its incident and owes the
closure notices)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from geo311.kernel.errors import FieldError, ValidationFailed
from geo311.kernel.media import photos
from geo311.kernel.media import service as media_service
from geo311.kernel.media.store import MediaStore
from work_orders import moving
from work_orders.models import RESOLUTION_CODES, WorkOrder
from work_orders.public_notes import PublicNote

NOTE_MAX_CHARS = 2000


def check_completion(*, note: str | None, resolution_code: str | None) -> tuple[str, str]:
    """Return the cleaned note and resolution code, or raise ValidationFailed listing both
    problems at once."""
    errors: list[FieldError] = []
    code = (resolution_code or "").strip()
    if not code:
        errors.append(FieldError("resolution_code", "resolution_code is required", "missing"))
    elif code not in RESOLUTION_CODES:
        errors.append(
            FieldError(
                "resolution_code",
                f"{code!r} is not a resolution code; use one of {', '.join(RESOLUTION_CODES)}",
                "unknown",
            )
        )
    text_note = (note or "").strip()
    if len(text_note) > NOTE_MAX_CHARS:
        errors.append(
            FieldError("note", f"the note is longer than {NOTE_MAX_CHARS} characters", "too_long")
        )
    if errors:
        raise ValidationFailed("; ".join(e.message for e in errors), errors=errors)
    return text_note, code


def complete_work_order(
    session: Session,
    *,
    work_order: WorkOrder,
    actor: str,
    photo: photos.ProcessedPhoto,
    note: str | None,
    resolution_code: str,
    media: MediaStore,
    jurisdiction_slug: str,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> WorkOrder:
    """Return the work order completed with its after-photo, note and resolution code; its
    incident is closed and every subscribed requester is owed the closure notice.

    The photo's files are written now and deleted again if the transaction rolls back.
    """
    now = now or datetime.now(UTC)
    text_note, code = check_completion(note=note, resolution_code=resolution_code)
    pair, moves = moving.prepare(
        session,
        entity=work_order,
        to="completed",
        reason=None,
        expected_version=expected_version,
    )
    row = media_service.store_photo(
        session,
        media,
        photo,
        jurisdiction_id=work_order.jurisdiction_id,
        jurisdiction_slug=jurisdiction_slug,
        kind="after",
        report_id=None,
        now=now,
    )
    work_order.after_photo_id = row.id
    work_order.completion_note = text_note or None
    work_order.resolution_code = code
    # The crew's note is for staff; residents are told the resolution, in chosen words.
    moving.apply(
        session,
        pair,
        moves,
        actor=actor,
        reason=text_note or None,
        now=now,
        public_note=PublicNote("resolved", {"resolution_code": code}),
    )
    return work_order
