"""Turn an uploaded report photo into a private original plus clean public copies.

Pure: bytes in, bytes out. No files, no database, no web framework. The caller stores
``ProcessedPhoto.original`` privately and serves only ``public_jpeg`` and ``thumb_jpeg``,
which carry pixels and nothing else (no EXIF, GPS, XMP, ICC profile or comment), because
a resident's photo of a pothole must not publish where they live or which phone they own.
"""

import contextlib
import hashlib
import io
import math
import re
import struct
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from numbers import Real
from typing import Any, ClassVar, Final

import imagehash
import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError

# Registering is idempotent, but doing it here once means any process that can call
# process_photo can also open iPhone HEIC uploads.
pillow_heif.register_heif_opener()

# Pillow format ids we accept. "JPEG" also admits MPO (multi-picture JPEG from some
# phones), which Pillow's JPEG opener returns with format "MPO".
_ACCEPTED_FORMATS: Final = ("JPEG", "PNG", "WEBP", "HEIF")
_MIME_BY_FORMAT: Final[Mapping[str, str]] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heif",
}
# Modes that carry transparency, which we flatten onto white before JPEG encoding.
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE: Final = (255, 255, 255)
_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_OFFSET_RE: Final = re.compile(r"([+-])(\d{2}):(\d{2})")
# Real-world UTC offsets run from -12:00 to +14:00; anything beyond is a corrupt tag.
_MAX_OFFSET: Final = timedelta(hours=14)
# Modes Pillow resizes well as they are. Others ("P" is resized nearest-neighbour, CMYK
# and YCbCr would need converting later anyway) become RGB(A) before shrinking.
_RESIZABLE_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "I", "F"})
# Beside the pixels: decoder state, the encoded JPEGs, Python objects (measured, rounded up).
_FIXED_DECODE_BYTES: Final = 24 * 1024 * 1024
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_UPRIGHT: Final[Mapping[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES: Final = frozenset(
    {
        Image.Transpose.TRANSPOSE,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
    }
)

DecodeGate = Callable[[int], AbstractContextManager[object]]
"""Given the bytes a decode is estimated to hold, a context to hold them in (it may wait)."""


@dataclass(frozen=True)
class GpsFix:
    """A position in WGS84 decimal degrees (south and west negative)."""

    lat: float
    lon: float


@dataclass(frozen=True)
class ProcessedPhoto:
    """An accepted upload: the private original and its metadata-free public copies."""

    original: bytes
    """The upload exactly as received; private, it may carry the reporter's location."""
    original_type: str
    """MIME type of the original, e.g. ``image/jpeg``, ``image/heic``, ``image/png``."""
    public_jpeg: bytes
    """Oriented sRGB JPEG, long edge <= ``public_max_px``, with no metadata at all."""
    thumb_jpeg: bytes
    """Oriented sRGB JPEG, long edge <= ``thumb_max_px``, with no metadata at all."""
    width: int
    """Width in pixels of the original after applying its EXIF orientation."""
    height: int
    """Height in pixels of the original after applying its EXIF orientation."""
    phash: str
    """Perceptual hash (``imagehash.phash``) as 16 hex characters, for duplicate finding."""
    gps: GpsFix | None
    """Position from the EXIF GPS IFD, or None when absent, void or not plausible."""
    taken_at: datetime | None
    """EXIF DateTimeOriginal. Timezone-aware when OffsetTimeOriginal is present; otherwise
    naive, and then it is the camera's local wall-clock time, not UTC."""
    sha256: str
    """SHA-256 of ``original`` as 64 hex characters."""
    decoded_size: tuple[int, int] = (0, 0)
    """Width and height the pixels were decoded at, before orientation: smaller than the
    original when the format can decode at reduced scale (JPEG) or carries a big enough
    embedded preview (HEIC)."""
    decode_cost: int = 0
    """Estimated bytes of pixel memory the decode held at its peak (what the gate was told)."""


class PhotoError(Exception):
    """An upload that cannot become a report photo."""

    code: ClassVar[str] = "photo_error"
    """Stable machine-readable reason, e.g. for a problem+json ``code`` field."""
    detail: str
    """One sentence for the person who uploaded the file."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PhotoTooLarge(PhotoError):
    """The upload has more bytes than allowed."""

    code = "photo_too_large"


class NotAnImage(PhotoError):
    """The upload is empty, not an image, or an image format we do not accept."""

    code = "not_an_image"


class TruncatedImage(PhotoError):
    """The upload starts like an image but its pixel data is cut short or corrupt."""

    code = "truncated_image"


class DecompressionBomb(PhotoError):
    """The image declares more pixels than allowed."""

    code = "decompression_bomb"


def process_photo(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    public_max_px: int = 2048,
    thumb_max_px: int = 320,
    jpeg_quality: int = 85,
    decode_gate: DecodeGate | None = None,
) -> ProcessedPhoto:
    """Return the validated upload with clean public JPEGs, hashes, GPS fix and capture time.

    Accepts JPEG, PNG, WebP and HEIC/HEIF. Limits are checked before any pixel memory is
    allocated: ``max_bytes`` on the raw upload, ``max_pixels`` on the size in the image
    header. Pillow's own ceiling (twice ``PIL.Image.MAX_IMAGE_PIXELS``) still applies even
    if ``max_pixels`` is higher.

    Pixels are decoded no larger than the public copy needs where the format allows it
    (JPEG at 1/2, 1/4 or 1/8 scale; a HEIC's embedded preview when big enough), and every
    later step (orientation, flattening, colour conversion) works on the shrunken picture,
    so the decoded image is the only full-size buffer. ``decode_gate``, when given, is
    entered with the estimated peak pixel memory (bytes) just before decoding and left when
    the public JPEGs are encoded; it may wait, or raise, to keep many uploads from holding
    pixels at once.

    Raises PhotoTooLarge, NotAnImage, TruncatedImage or DecompressionBomb (all PhotoError),
    or whatever ``decode_gate`` raises. Malformed EXIF never raises: it only yields
    ``gps=None`` / ``taken_at=None``.
    """
    _check_positive(max_bytes=max_bytes, max_pixels=max_pixels)
    _check_positive(public_max_px=public_max_px, thumb_max_px=thumb_max_px)
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be between 1 and 100, got {jpeg_quality}")
    if len(data) > max_bytes:
        raise PhotoTooLarge(f"The photo is {len(data)} bytes; the limit is {max_bytes} bytes.")

    with _open_image(data) as image:
        header_size = image.size
        if header_size[0] * header_size[1] > max_pixels:
            raise DecompressionBomb(
                f"The image claims {header_size[0]}x{header_size[1]} pixels; "
                f"the limit is {max_pixels} pixels."
            )
        original_type = _mime_type(image)
        # Decoding a JPEG at 1/2, 1/4 or 1/8 scale in libjpeg is far cheaper than decoding
        # it whole and shrinking; draft never goes below the size asked for, so the public
        # copy loses nothing. For HEIC it may pick an embedded preview that is big enough.
        image.draft(None, _fit(header_size, public_max_px))
        decoded_size = image.size
        cost = _decode_cost(image, header_size, public_max_px)
        with decode_gate(cost) if decode_gate is not None else contextlib.nullcontext():
            _load_pixels(image)
            exif = _parse_exif(image.info)
            icc_profile = image.info.get("icc_profile")
            upright = _upright(image)
            public = _shrink(_resizable(image), public_max_px, reducing_gap=3.0)
            if public is image:
                public = image.copy()
            image.close()  # the full-size pixels go now, not when the caller's frame ends
            if upright is not None:
                # Hostile EXIF can make Pillow raise anything; an unrotated photo is better
                # than a refused one. Turning the shrunken copy gives the same pixels cheaply.
                with contextlib.suppress(Exception):
                    public = public.transpose(upright)
            public = _to_srgb(_flatten_to_rgb(public), icc_profile)
            thumb = _shrink(public, thumb_max_px, reducing_gap=2.0)
            public_jpeg = _encode_jpeg(public, jpeg_quality)
            thumb_jpeg = _encode_jpeg(thumb, jpeg_quality)
            # phash shrinks to 32x32 anyway; hashing the thumbnail keeps it cheap.
            phash = str(imagehash.phash(thumb))
            del public, thumb

    swapped = upright in _SWAPS_AXES
    width, height = (header_size[1], header_size[0]) if swapped else header_size
    return ProcessedPhoto(
        original=data,
        original_type=original_type,
        public_jpeg=public_jpeg,
        thumb_jpeg=thumb_jpeg,
        width=width,
        height=height,
        phash=phash,
        gps=_gps_from_exif(exif),
        taken_at=_taken_at_from_exif(exif),
        sha256=hashlib.sha256(data).hexdigest(),
        decoded_size=decoded_size,
        decode_cost=cost,
    )


def read_gps(data: bytes) -> GpsFix | None:
    """Return the EXIF GPS position of an image, or None if it has none or is unreadable.

    Reads only the header and metadata, never the pixel data, so it is cheap even for
    large photos. It never raises: anything that is not a readable JPEG, PNG, WebP or
    HEIC gives None. For PNG, only an eXIf chunk placed before the pixel data is seen.
    """
    try:
        with _open_image(data) as image:
            return _gps_from_exif(_parse_exif(image.info))
    except PhotoError:
        return None


def _check_positive(**values: int) -> None:
    """Return None; raise ValueError naming the first argument that is not >= 1."""
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def _open_image(data: bytes) -> ImageFile.ImageFile:
    """Return the image lazily opened from ``data``: header parsed, no pixels decoded."""
    try:
        return Image.open(io.BytesIO(data), formats=_ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives here as an exception only when warnings are set to errors
        # (python -W error); otherwise the max_pixels check after opening decides.
        raise DecompressionBomb("The image claims far more pixels than any photo needs.") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("The file is not a JPEG, PNG, WebP or HEIC image.") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        # A format's signature matched but its opener failed (WebP reads its chunks
        # while opening), so the file is an image that is damaged, not a non-image.
        raise TruncatedImage("The image file is damaged or incomplete.") from exc


def _mime_type(image: ImageFile.ImageFile) -> str:
    """Return the MIME type of the opened image's container format."""
    if image.format == "HEIF":
        # pillow-heif tells HEIC (HEVC-coded, what iPhones write) from other HEIF brands.
        return image.get_format_mimetype() or _MIME_BY_FORMAT["HEIF"]
    mime = _MIME_BY_FORMAT.get(image.format or "")
    if mime is None:
        # Unreachable while Image.open is limited to _ACCEPTED_FORMATS; kept so a new
        # entry there cannot silently yield an unknown type.
        raise NotAnImage("The file is not a JPEG, PNG, WebP or HEIC image.")
    return mime


def _load_pixels(image: Image.Image) -> None:
    """Return None once the pixels are decoded; raise TruncatedImage if they are broken."""
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBomb("The image claims far more pixels than any photo needs.") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise TruncatedImage("The image file is cut short or its pixel data is corrupt.") from exc


def _decode_cost(image: ImageFile.ImageFile, header_size: tuple[int, int], max_px: int) -> int:
    """Return an upper estimate, in bytes, of the pixel memory decoding ``image`` holds at once.

    Call after ``draft``: ``image.size`` and ``image.mode`` are then what will be decoded.
    Counted: the decoded image, a full-size RGB(A) copy when the mode must be converted
    before resizing, the premultiplied copy Pillow makes to resize with alpha, the resize's
    intermediate, and what the format's decoder holds beside the image (libjpeg keeps every
    DCT coefficient of a progressive JPEG at full scale; libheif decodes to its own buffer
    that is then copied).
    """
    pixels = image.size[0] * image.size[1]
    cost = pixels * _bytes_per_pixel(image.mode)
    alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    if image.mode not in _RESIZABLE_MODES or "transparency" in image.info:
        cost += pixels * 4
    target = _fit(image.size, max_px)
    if target != image.size:
        if alpha:
            cost += pixels * 4
        # Lanczos runs horizontally first: target width x source height.
        cost += target[0] * image.size[1] * 4
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        # 2 bytes per coefficient, one per pixel per component; 3 components at full
        # resolution is the worst case (no chroma subsampling).
        cost += header_size[0] * header_size[1] * 2 * max(1, len(image.getbands()))
    elif image.format == "HEIF":
        # libheif's own decoded copy, which Pillow then copies again.
        cost += pixels * 4
    elif image.format == "WEBP":
        # Pillow gets the frame from libwebp as one bytes object (libwebp's buffer, then
        # that copy) and reads it into the image: three full-size buffers, plus libwebp's.
        cost += pixels * 12
    # Once the full-size buffers are gone, the public-sized copies (shrunk, flattened, sRGB)
    # live together; the peak is whichever phase holds more.
    public_phase = target[0] * target[1] * 4 * 3
    return max(cost, public_phase) + _FIXED_DECODE_BYTES


def _bytes_per_pixel(mode: str) -> int:
    """Return how many bytes Pillow stores per pixel in ``mode``."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    # Pillow keeps every multi-band 8-bit mode (RGB too) and I/F in 32 bits.
    return 4


def _upright(image: Image.Image) -> Image.Transpose | None:
    """Return the transpose that shows ``image`` upright per its EXIF (or XMP) orientation."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        # See _parse_exif: bad metadata costs the orientation, never the photo.
        return None
    return _UPRIGHT.get(orientation) if isinstance(orientation, int) else None


def _resizable(image: Image.Image) -> Image.Image:
    """Return ``image`` itself if Pillow resizes its mode well, else an RGB(A) copy of it."""
    if "transparency" in image.info:
        return image.convert("RGBA")
    if image.mode in _RESIZABLE_MODES:
        return image
    if image.mode in _ALPHA_MODES:
        return image.convert("RGBA")
    return image.convert("RGB")


def _fit(size: tuple[int, int], max_px: int) -> tuple[int, int]:
    """Return ``size`` scaled down (never up) so its long edge is at most ``max_px``."""
    width, height = size
    long_edge = max(width, height)
    if long_edge <= max_px:
        return size
    scale = max_px / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Return a new RGB image with the pixels of ``image``, alpha composited onto white.

    The result is built with Image.new, so it inherits none of the source's ``info``,
    EXIF, XMP, ICC or comment: Pillow's JPEG writer (depending on version) re-emits an
    ``xmp`` or ``comment`` it finds in ``info`` even when not asked to.
    """
    clean = Image.new("RGB", image.size, _WHITE)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        clean.paste(rgba, mask=rgba)
    else:
        clean.paste(image if image.mode == "RGB" else image.convert("RGB"))
    return clean


def _shrink(image: Image.Image, max_px: int, *, reducing_gap: float) -> Image.Image:
    """Return ``image`` resized so its long edge is at most ``max_px``, or itself if it fits.

    ``reducing_gap`` lets Pillow box-reduce by an integer factor first and run Lanczos only
    over the last step; quality stays indistinguishable and large reductions get much faster.
    """
    size = _fit(image.size, max_px)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=reducing_gap)


def _to_srgb(image: Image.Image, icc_profile: object) -> Image.Image:
    """Return the RGB ``image`` converted from its embedded ICC profile to sRGB.

    The public copies drop the profile, and browsers read untagged JPEGs as sRGB, so an
    iPhone's Display P3 photo would look washed out unless converted first. A missing,
    unreadable or non-RGB profile leaves the pixels as they are.
    """
    if not isinstance(icc_profile, bytes) or not icc_profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if source.profile.xcolor_space != "RGB ":
            return image
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    # profileToProfile returns None only when asked to convert in place, which we do not.
    return converted if converted is not None else image


def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """Return ``image`` encoded as a baseline JPEG carrying only a JFIF header."""
    buffer = io.BytesIO()
    # The image is already clean (see _flatten_to_rgb); naming every metadata option empty
    # as well stops the writer falling back to anything it finds on the image object.
    image.save(
        buffer,
        format="JPEG",
        quality=quality,
        exif=b"",
        xmp=b"",
        icc_profile=None,
        comment=b"",
    )
    return buffer.getvalue()


def _parse_exif(info: Mapping[Any, Any]) -> Image.Exif | None:
    """Return the EXIF block found in an opened image's ``info``, or None if absent or bad."""
    raw = info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return None
    exif = Image.Exif()
    try:
        exif.load(raw)
    except Exception:
        # EXIF is untrusted input and Pillow's TIFF parser raises many exception types on
        # garbage; bad EXIF must cost the metadata, never the photo.
        return None
    return exif


def _gps_from_exif(exif: Image.Exif | None) -> GpsFix | None:
    """Return the position in the EXIF GPS IFD, or None if absent, void or implausible."""
    if exif is None:
        return None
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        if _ascii(gps.get(ExifTags.GPS.GPSStatus)) == "V":
            # "V" means the receiver marked the measurement void.
            return None
        lat = _degrees(
            gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "N", "S"
        )
        lon = _degrees(
            gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "E", "W"
        )
    except Exception:
        # Sub-IFDs are parsed lazily, so a bad GPS pointer only fails here; see _parse_exif.
        return None
    if lat is None or lon is None:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    if lat == 0.0 and lon == 0.0:
        # (0, 0) is what cameras write when they had no fix, not a report from the sea.
        return None
    return GpsFix(lat=lat, lon=lon)


def _degrees(dms: object, ref: object, positive: str, negative: str) -> float | None:
    """Return signed decimal degrees from an EXIF (deg, min, sec) triple and N/S/E/W ref."""
    hemisphere = _ascii(ref)
    if hemisphere not in (positive, negative):
        # Without a reference the sign is a guess, and a fix in the wrong hemisphere is
        # worse than none.
        return None
    if not isinstance(dms, tuple | list) or len(dms) != 3:
        return None
    parts: list[float] = []
    for part in dms:
        if isinstance(part, bool) or not isinstance(part, Real):
            return None
        value = float(part)  # an IFDRational with a zero denominator gives nan
        if not math.isfinite(value) or value < 0.0:
            return None
        parts.append(value)
    deg, minutes, seconds = parts
    # 60 is allowed because some writers round 59.9996 seconds up.
    if minutes > 60.0 or seconds > 60.0:
        return None
    magnitude = deg + minutes / 60.0 + seconds / 3600.0
    return -magnitude if hemisphere == negative else magnitude


def _taken_at_from_exif(exif: Image.Exif | None) -> datetime | None:
    """Return EXIF DateTimeOriginal, aware if OffsetTimeOriginal is given, else naive."""
    if exif is None:
        return None
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        stamp = _ascii(exif_ifd.get(ExifTags.Base.DateTimeOriginal))
        offset = _utc_offset(_ascii(exif_ifd.get(ExifTags.Base.OffsetTimeOriginal)))
    except Exception:
        # See _parse_exif.
        return None
    if stamp is None:
        return None
    try:
        # Cameras write "0000:00:00 00:00:00" or blanks when the clock was unset.
        taken = datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return taken if offset is None else taken.replace(tzinfo=offset)


def _utc_offset(text: str | None) -> timezone | None:
    """Return the timezone for an EXIF offset such as "+09:00", or None if not plausible."""
    if text is None:
        return None
    match = _OFFSET_RE.fullmatch(text)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(minutes) >= 60:
        return None
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > _MAX_OFFSET:
        return None
    return timezone(-delta if sign == "-" else delta)


def _ascii(value: object) -> str | None:
    """Return an EXIF ASCII value stripped and upper-cased, or None if it is not text."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ").upper() or None
