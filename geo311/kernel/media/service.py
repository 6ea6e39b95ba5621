"""Storing a processed photo: its row in the photos table and its three files, together."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from geoalchemy2 import WKTElement
from sqlalchemy.orm import Session

from geo311.kernel.media.models import Photo
from geo311.kernel.media.photos import ProcessedPhoto
from geo311.kernel.media.store import MediaStore, stage_files

_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
}


def store_photo(
    session: Session,
    media: MediaStore,
    processed: ProcessedPhoto,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    kind: Literal["report", "after"],
    report_id: int | None,
    now: datetime,
) -> Photo:
    """Return the flushed row of a processed photo (a report's, or a crew's after-photo).

    The original goes under ``private/`` (never served), the public copy and its thumbnail
    under ``public/``; the files are written now and deleted again if the transaction rolls
    back, so a refused request leaves no file behind.
    """
    photo = Photo(
        **stage_photo(
            session,
            media,
            processed,
            jurisdiction_id=jurisdiction_id,
            jurisdiction_slug=jurisdiction_slug,
            kind=kind,
            report_id=report_id,
            now=now,
        )
    )
    session.add(photo)
    session.flush()
    return photo


def stage_photo(
    session: Session,
    media: MediaStore,
    processed: ProcessedPhoto,
    *,
    jurisdiction_id: int,
    jurisdiction_slug: str,
    kind: Literal["report", "after"],
    report_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Return a processed photo's row (``Photo`` columns) for the caller to insert, its files
    written now and deleted again if ``session``'s transaction rolls back (as
    :func:`store_photo`, which inserts the row itself)."""
    prefix = "after-" if kind == "after" else ""
    stem = f"{jurisdiction_slug}/{now:%Y/%m}/{prefix}{uuid.uuid4().hex}"
    keys = {
        "original": f"private/{stem}{_EXTENSIONS.get(processed.original_type, '.bin')}",
        "public": f"public/{stem}.jpg",
        "thumb": f"public/{stem}_thumb.jpg",
    }
    gps = processed.gps
    stage_files(
        session,
        media,
        {
            keys["original"]: processed.original,
            keys["public"]: processed.public_jpeg,
            keys["thumb"]: processed.thumb_jpeg,
        },
    )
    return {
        "jurisdiction_id": jurisdiction_id,
        "report_id": report_id,
        "kind": kind,
        "original_key": keys["original"],
        "original_type": processed.original_type,
        "public_key": keys["public"],
        "thumb_key": keys["thumb"],
        "width": processed.width,
        "height": processed.height,
        "phash": processed.phash,
        "sha256": processed.sha256,
        "taken_at": processed.taken_at,
        "exif_geom": WKTElement(f"POINT({gps.lon} {gps.lat})", srid=4326) if gps else None,
    }
