"""A photo upload through the photo pipeline, with the error a person should see.

Shared by report intake and by crews' after-photos, so both refuse the same files the same way.
"""

from __future__ import annotations

from geo311.errors import AppError, FieldError, PayloadTooLarge, UnsupportedMediaType
from geo311.intake import photos
from geo311.settings import MediaSettings


class BadPhoto(AppError):
    status = 422
    code = "bad_photo"
    title = "The photo cannot be read"


def process_upload(data: bytes, settings: MediaSettings) -> photos.ProcessedPhoto:
    """Return the processed photo (metadata stripped), or raise the AppError to show."""
    try:
        return photos.process_photo(
            data,
            max_bytes=settings.max_bytes,
            max_pixels=settings.max_pixels,
            public_max_px=settings.public_max_px,
            thumb_max_px=settings.thumb_max_px,
            jpeg_quality=settings.jpeg_quality,
        )
    except photos.PhotoTooLarge as exc:
        raise PayloadTooLarge(exc.detail, extra={"reason": exc.code}) from exc
    except photos.NotAnImage as exc:
        raise UnsupportedMediaType(exc.detail, extra={"reason": exc.code}) from exc
    except photos.PhotoError as exc:
        raise BadPhoto(
            exc.detail,
            errors=[FieldError("photo", exc.detail, exc.code)],
            extra={"reason": exc.code},
        ) from exc
