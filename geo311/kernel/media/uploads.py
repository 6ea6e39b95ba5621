"""A photo upload through the photo pipeline, with the error a person should see.

Shared by report intake and by crews' after-photos, so both refuse the same files the same way,
and both draw on one process-wide decode budget: a burst of large uploads waits its turn
instead of decoding all at once (eight 50-megapixel PNGs in parallel once took the server
from 276 MB to 3.5 GB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from geo311.kernel.errors import AppError, FieldError, PayloadTooLarge, UnsupportedMediaType
from geo311.kernel.media import photos
from geo311.kernel.settings import MediaSettings

_MB = 1024 * 1024


class BadPhoto(AppError):
    status = 422
    code = "bad_photo"
    title = "The photo cannot be read"


class DecodeBusy(AppError):
    status = 503
    code = "photo_decoding_busy"
    title = "Too many photos are being processed"


class DecodeGate:
    """Pixel memory shared by every decode in the process: a weighted, first-come semaphore.

    Each decode holds its estimated bytes; it starts when it is first in line, its bytes fit
    in what is left of the budget and fewer than ``max_concurrent`` decodes are running.
    A decode that alone needs more than the whole budget is refused at once; one that
    waits longer than ``wait_s`` is refused with 503 and a Retry-After.
    """

    def __init__(self, *, budget_bytes: int, max_concurrent: int, wait_s: float) -> None:
        if budget_bytes < 1 or max_concurrent < 1 or wait_s < 0:
            raise ValueError("budget_bytes and max_concurrent must be >= 1, wait_s >= 0")
        self.budget_bytes = budget_bytes
        self.max_concurrent = max_concurrent
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._line: deque[object] = deque()
        self._held_bytes = 0
        self._running = 0

    @property
    def held_bytes(self) -> int:
        """Return the bytes the running decodes hold now."""
        with self._cond:
            return self._held_bytes

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        """Hold ``cost`` bytes of the budget for the body; wait for them first if needed."""
        if cost > self.budget_bytes:
            raise PayloadTooLarge(
                f"Decoding this image would take about {math.ceil(cost / _MB)} MB of memory; "
                f"photos may take at most {self.budget_bytes // _MB} MB. Send it as a JPEG "
                "or with fewer pixels.",
                extra={"reason": "photo_too_large_to_decode"},
            )
        self._acquire(cost)
        try:
            yield
        finally:
            with self._cond:
                self._held_bytes -= cost
                self._running -= 1
                self._cond.notify_all()
            # glibc keeps freed memory in per-thread arenas: without this, decodes spread
            # over the web server's threads left it at 2.9 GB after a burst of sixteen 50 MP
            # PNGs even with the budget (bench/uploads.py); trimming costs a few ms.
            release_free_memory()

    def _acquire(self, cost: int) -> None:
        deadline = time.monotonic() + self.wait_s
        ticket = object()
        with self._cond:
            self._line.append(ticket)
            try:
                while not (
                    self._line[0] is ticket
                    and self._held_bytes + cost <= self.budget_bytes
                    and self._running < self.max_concurrent
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        retry_after = max(1, math.ceil(self.wait_s))
                        raise DecodeBusy(
                            "Too many photos are being processed right now; "
                            f"send the report again in {retry_after} seconds.",
                            extra={"reason": "photo_decoding_busy"},
                            headers={"Retry-After": str(retry_after)},
                        )
                    self._cond.wait(remaining)
                self._held_bytes += cost
                self._running += 1
            finally:
                self._line.remove(ticket)
                # The next in line may now be first, or may be the one leaving.
                self._cond.notify_all()


@lru_cache(maxsize=8)
def decode_gate(budget_mb: int, max_concurrent: int | None, wait_s: float) -> DecodeGate:
    """Return the process's gate for these settings (one per distinct setting values)."""
    return DecodeGate(
        budget_bytes=budget_mb * _MB,
        # Decoding is CPU-bound: more decodes than cores add memory and latency, not speed.
        max_concurrent=max_concurrent or os.cpu_count() or 1,
        wait_s=wait_s,
    )


def gate_for(settings: MediaSettings) -> DecodeGate:
    """Return the decode gate the media settings describe."""
    return decode_gate(
        settings.decode_memory_mb, settings.max_concurrent_decodes, settings.decode_wait_s
    )


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's malloc_trim, or None on another C library."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> None:
    """Return freed heap memory to the system where the C library allows it (glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


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
            decode_gate=gate_for(settings).hold,
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
