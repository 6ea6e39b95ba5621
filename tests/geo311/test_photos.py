"""Tests for geo311.kernel.media.photos: every image is generated here with Pillow."""

import hashlib
import io
import random
import struct
import warnings
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import imagehash
import pytest
from PIL import Image, ImageCms, ImageDraw, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational

from geo311.kernel.media.photos import (
    DecompressionBomb,
    GpsFix,
    NotAnImage,
    PhotoError,
    PhotoTooLarge,
    ProcessedPhoto,
    TruncatedImage,
    process_photo,
    read_gps,
)

LIMITS = {"max_bytes": 20_000_000, "max_pixels": 50_000_000}
RED = (220, 30, 30)
BLUE = (30, 30, 220)
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    b'xmp:CreatorTool="SecretPhone 9"/></rdf:RDF></x:xmpmeta>'
)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# The only keys Pillow reports for a JPEG whose sole marker is libjpeg's JFIF APP0
# (format version and pixel density, nothing about the camera, place or person).
JFIF_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density"}


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def scene(size: tuple[int, int] = (320, 240), *, variant: int = 0) -> Image.Image:
    """A picture with large shapes, so its perceptual hash is well defined."""
    image = Image.new("RGB", size, (200, 210, 190))
    draw = ImageDraw.Draw(image)
    w, h = size
    if variant == 0:
        draw.ellipse((w // 8, h // 6, w // 2, h * 5 // 6), fill=(40, 60, 160))
        draw.rectangle((w * 5 // 8, h // 8, w * 7 // 8, h // 2), fill=(180, 40, 40))
    else:
        draw.rectangle((0, h // 2, w, h), fill=(30, 30, 30))
        draw.polygon([(w // 2, 0), (w, h // 2), (w // 4, h * 3 // 4)], fill=(240, 240, 60))
    return image


def noisy(size: tuple[int, int] = (512, 384)) -> Image.Image:
    """A picture whose compressed pixel data is much larger than its headers."""
    return Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600 * 100)
    return IFDRational(degrees), IFDRational(minutes), IFDRational(seconds, 100)


def gps_exif(
    lat: object = None,
    lat_ref: object = None,
    lon: object = None,
    lon_ref: object = None,
    **extra: object,
) -> Image.Exif:
    """EXIF whose GPS IFD holds the given raw values (None leaves a tag out)."""
    exif = Image.Exif()
    exif[0x010F] = "SecretPhone Inc."  # Make, something a public copy must not leak
    gps = exif.get_ifd(0x8825)
    for tag, value in ((1, lat_ref), (2, lat), (3, lon_ref), (4, lon)):
        if value is not None:
            gps[tag] = value
    for name, value in extra.items():
        gps[{"status": 9}[name]] = value
    return exif


def rio_exif() -> Image.Exif:
    # Rio de Janeiro: south of the equator and west of Greenwich.
    return gps_exif(dms(22.9083), "S", dms(43.1964), "W")


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but whose pixel data is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def swapped_primaries_icc() -> bytes:
    """An RGB ICC profile (linear TRC) whose red primary is sRGB's green and vice versa."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    d50 = (0.9642, 1.0, 0.8249)
    linear = b"curv\0\0\0\0" + struct.pack(">I", 0)
    tags = [
        (b"rXYZ", xyz(0.3851, 0.7169, 0.0971)),  # sRGB's green, D50-adapted
        (b"gXYZ", xyz(0.4361, 0.2225, 0.0139)),  # sRGB's red
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", linear),
        (b"gTRC", linear),
        (b"bTRC", linear),
        (b"wtpt", xyz(*d50)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 28
        + s15(d50[0])
        + s15(d50[1])
        + s15(d50[2])
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def process(data: bytes, **overrides: Any) -> ProcessedPhoto:
    return process_photo(data, **{**LIMITS, **overrides})


def opened(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def assert_close(actual: object, expected: tuple[int, int, int], tolerance: int = 40) -> None:
    assert isinstance(actual, tuple)
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), actual


# --- accepted formats and basic facts -----------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "mime"),
    [
        ("JPEG", {}, "image/jpeg"),
        ("MPO", {"save_all": True, "append_images": [scene(variant=1)]}, "image/jpeg"),
        ("PNG", {}, "image/png"),
        ("WEBP", {}, "image/webp"),
        ("HEIF", {}, "image/heic"),
    ],
)
def test_accepted_formats_become_jpeg(fmt: str, params: dict[str, object], mime: str) -> None:
    data = encode(scene(), fmt, **params)

    photo = process(data)

    assert photo.original == data
    assert photo.original_type == mime
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    assert (photo.width, photo.height) == (320, 240)
    assert opened(photo.public_jpeg).format == "JPEG"
    assert opened(photo.thumb_jpeg).format == "JPEG"


def test_sizes_are_capped_and_dimensions_are_the_originals() -> None:
    data = encode(scene((3000, 1000)), "JPEG")

    photo = process(data, public_max_px=1000, thumb_max_px=120)

    assert (photo.width, photo.height) == (3000, 1000)
    assert opened(photo.public_jpeg).size == (1000, 333)
    assert opened(photo.thumb_jpeg).size == (120, 40)


def test_large_jpeg_decoded_at_reduced_scale_keeps_full_public_size() -> None:
    # 4x the public edge, so the JPEG is decoded at 1/4 scale: exactly the public size.
    data = encode(scene((4096, 2048)), "JPEG")

    photo = process(data, public_max_px=1024, thumb_max_px=100)

    assert (photo.width, photo.height) == (4096, 2048)
    assert opened(photo.public_jpeg).size == (1024, 512)
    assert_close(opened(photo.public_jpeg).getpixel((5, 5)), (200, 210, 190), tolerance=10)


def test_transparency_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((32, 0, 63, 63), fill=(*BLUE, 255))

    photo = process(encode(image, "PNG"))

    public = opened(photo.public_jpeg)
    assert public.mode == "RGB"
    assert_close(public.getpixel((8, 32)), (255, 255, 255), tolerance=8)
    assert_close(public.getpixel((56, 32)), BLUE, tolerance=8)


# --- orientation --------------------------------------------------------------------------


def corner_marked(size: tuple[int, int]) -> Image.Image:
    """A blue picture with a red block in its top-left corner."""
    image = Image.new("RGB", size, BLUE)
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 3, size[1] // 3), fill=RED)
    return image


def test_orientation_6_swaps_dimensions_and_rotates_pixels() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display needs a quarter turn clockwise
    data = encode(corner_marked((600, 400)), "JPEG", exif=exif)

    photo = process(data, thumb_max_px=60)

    assert (photo.width, photo.height) == (400, 600)
    public, thumb = opened(photo.public_jpeg), opened(photo.thumb_jpeg)
    assert public.size == (400, 600)
    assert thumb.size == (40, 60)
    # The stored top-left corner is the displayed top-right corner.
    assert_close(public.getpixel((390, 10)), RED)
    assert_close(public.getpixel((10, 10)), BLUE)
    assert_close(public.getpixel((390, 590)), BLUE)
    assert_close(thumb.getpixel((38, 2)), RED)
    assert_close(thumb.getpixel((2, 2)), BLUE)


def test_orientation_with_reduced_scale_decode_reports_original_dimensions() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(corner_marked((2400, 1600)), "JPEG", exif=exif)

    photo = process(data, public_max_px=600)

    assert (photo.width, photo.height) == (1600, 2400)
    public = opened(photo.public_jpeg)
    assert public.size == (400, 600)
    assert_close(public.getpixel((390, 10)), RED)


# --- metadata never reaches the public copies ---------------------------------------------


def with_all_metadata(fmt: str) -> bytes:
    image = scene()
    exif = rio_exif()
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_itxt("XML:com.adobe.xmp", XMP.decode())
        text.add_text("Comment", "SecretComment")
        return encode(image, fmt, exif=exif, icc_profile=SRGB_ICC, pnginfo=text)
    params: dict[str, object] = {"exif": exif, "icc_profile": SRGB_ICC, "xmp": XMP}
    if fmt == "JPEG":
        params["comment"] = b"SecretComment"
    return encode(image, fmt, **params)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
@pytest.mark.parametrize("copy", ["public_jpeg", "thumb_jpeg"])
def test_public_copies_carry_no_metadata(fmt: str, copy: str) -> None:
    data = with_all_metadata(fmt)
    source = Image.open(io.BytesIO(data))
    assert source.info.get("icc_profile")
    assert source.getexif().get_ifd(0x8825)
    assert XMP in data

    photo = process(data)

    jpeg: bytes = getattr(photo, copy)
    image = opened(jpeg)
    assert set(image.info) <= JFIF_KEYS
    assert len(image.getexif()) == 0
    assert image.getexif().get_ifd(0x8825) == {}
    for marker in (b"Exif", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"Secret", b"xmpmeta"):
        assert marker not in jpeg
    assert photo.gps is not None  # the private original still had it


def test_wide_gamut_profile_is_converted_to_srgb_before_being_dropped() -> None:
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    data = encode(image, "PNG", icc_profile=swapped_primaries_icc())

    photo = process(data)

    # The profile says this file's "red" channel is sRGB green; a viewer of the
    # untagged public copy must see green.
    assert_close(opened(photo.public_jpeg).getpixel((32, 32)), (0, 255, 0), tolerance=25)
    assert_close(opened(photo.thumb_jpeg).getpixel((32, 32)), (0, 255, 0), tolerance=25)


def test_srgb_profile_leaves_colours_alone() -> None:
    image = Image.new("RGB", (64, 64), (200, 120, 40))

    photo = process(encode(image, "PNG", icc_profile=SRGB_ICC))

    assert_close(opened(photo.public_jpeg).getpixel((32, 32)), (200, 120, 40), tolerance=4)


def test_unusable_icc_profile_is_dropped_without_error() -> None:
    image = Image.new("RGB", (64, 64), (200, 120, 40))

    photo = process(encode(image, "JPEG", icc_profile=b"not a profile" * 20))

    assert b"ICC_PROFILE" not in photo.public_jpeg
    assert_close(opened(photo.public_jpeg).getpixel((32, 32)), (200, 120, 40), tolerance=4)


# --- GPS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exif", "expected"),
    [
        (rio_exif(), GpsFix(lat=-22.9083, lon=-43.1964)),
        (gps_exif(dms(35.6586), "N", dms(139.7454), "E"), GpsFix(lat=35.6586, lon=139.7454)),
        (gps_exif(dms(40.6892), "n", dms(74.0445), "w"), GpsFix(lat=40.6892, lon=-74.0445)),
        (gps_exif(dms(51.5), "N", dms(0.1), "W", status="A"), GpsFix(lat=51.5, lon=-0.1)),
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "HEIF", "WEBP", "PNG"])
def test_gps_is_read_with_hemisphere_signs(fmt: str, exif: Image.Exif, expected: GpsFix) -> None:
    data = encode(scene(), fmt, exif=exif)

    fixes = [process(data).gps, read_gps(data)]

    for fix in fixes:
        assert fix is not None
        assert fix.lat == pytest.approx(expected.lat, abs=1e-5)
        assert fix.lon == pytest.approx(expected.lon, abs=1e-5)


@pytest.mark.parametrize(
    "exif",
    [
        pytest.param(Image.Exif(), id="no-gps"),
        pytest.param(gps_exif((0, 0, 0), "N", (0, 0, 0), "E"), id="null-island"),
        pytest.param(gps_exif(dms(95.0), "N", dms(10.0), "E"), id="latitude-out-of-range"),
        pytest.param(gps_exif(dms(45.0), "N", dms(181.0), "E"), id="longitude-out-of-range"),
        pytest.param(gps_exif(dms(45.0), None, dms(10.0), "E"), id="missing-ref"),
        pytest.param(gps_exif(dms(45.0), "X", dms(10.0), "E"), id="bad-ref"),
        pytest.param(gps_exif(dms(45.0)[:2], "N", dms(10.0), "E"), id="two-components"),
        pytest.param(
            gps_exif((IFDRational(45), IFDRational(1, 0), IFDRational(0)), "N", dms(10.0), "E"),
            id="zero-denominator",
        ),
        pytest.param(
            gps_exif((IFDRational(45), IFDRational(75), IFDRational(0)), "N", dms(10.0), "E"),
            id="minutes-over-60",
        ),
        pytest.param(gps_exif(dms(45.0), "N", dms(10.0), "E", status="V"), id="void-fix"),
    ],
)
def test_absent_or_implausible_gps_gives_none(exif: Image.Exif) -> None:
    data = encode(scene(), "JPEG", exif=exif)

    assert process(data).gps is None
    assert read_gps(data) is None


def test_garbage_exif_costs_only_the_metadata() -> None:
    data = encode(scene(), "JPEG", exif=b"Exif\x00\x00this is not a TIFF structure at all")

    photo = process(data)

    assert photo.gps is None
    assert photo.taken_at is None
    assert (photo.width, photo.height) == (320, 240)
    assert read_gps(data) is None


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_gps_ifd_pointing_outside_the_exif_block_gives_none() -> None:
    # A big-endian TIFF header with one IFD0 entry: GPSInfo (LONG) pointing far past the end.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHII", 0x8825, 4, 1, 0x7FFF0000)
    tiff += struct.pack(">I", 0)
    data = encode(scene(), "JPEG", exif=b"Exif\x00\x00" + tiff)

    assert process(data).gps is None
    assert read_gps(data) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"plain text", png_with_header(100_000, 100_000)],
    ids=["empty", "text", "bomb"],
)
def test_read_gps_never_raises(data: bytes) -> None:
    assert read_gps(data) is None


# --- capture time -------------------------------------------------------------------------


def time_exif(original: str | None, offset: str | None) -> Image.Exif:
    exif = Image.Exif()
    exif_ifd = exif.get_ifd(0x8769)
    if original is not None:
        exif_ifd[0x9003] = original
    if offset is not None:
        exif_ifd[0x9011] = offset
    return exif


@pytest.mark.parametrize(
    ("original", "offset", "expected"),
    [
        (
            "2024:05:01 18:30:05",
            "+09:00",
            datetime(2024, 5, 1, 18, 30, 5, tzinfo=timezone(timedelta(hours=9))),
        ),
        (
            "2024:05:01 18:30:05",
            "-03:30",
            datetime(2024, 5, 1, 18, 30, 5, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        ),
        # Without a usable offset the naive camera-local time comes back as written.
        ("2024:05:01 18:30:05", None, datetime(2024, 5, 1, 18, 30, 5)),
        ("2024:05:01 18:30:05", "+25:00", datetime(2024, 5, 1, 18, 30, 5)),
        ("0000:00:00 00:00:00", "+01:00", None),
        ("    :  :     :  :  ", None, None),
        (None, "+01:00", None),
    ],
)
def test_taken_at_uses_offset_when_present(
    original: str | None, offset: str | None, expected: datetime | None
) -> None:
    data = encode(scene(), "JPEG", exif=time_exif(original, offset))

    taken_at = process(data).taken_at

    assert taken_at == expected
    if expected is not None:
        assert taken_at is not None
        assert taken_at.utcoffset() == expected.utcoffset()


# --- perceptual hash ----------------------------------------------------------------------


def test_phash_is_stable_and_tells_pictures_apart() -> None:
    first = process(encode(scene((800, 600)), "JPEG")).phash
    again = process(encode(scene((800, 600)), "JPEG")).phash
    as_png = process(encode(scene((800, 600)), "PNG")).phash
    smaller = process(encode(scene((400, 300)), "WEBP")).phash
    other = process(encode(scene((800, 600), variant=1), "JPEG")).phash

    def distance(a: str, b: str) -> int:
        return int(imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b))

    assert len(first) == 16
    assert int(first, 16) >= 0
    assert again == first
    assert distance(first, as_png) <= 4
    assert distance(first, smaller) <= 4
    assert distance(first, other) >= 16


# --- refusals -----------------------------------------------------------------------------


def test_too_many_bytes_is_refused_before_decoding() -> None:
    with pytest.raises(PhotoTooLarge) as caught:
        process_photo(b"x" * 1001, max_bytes=1000, max_pixels=1_000_000)

    assert caught.value.code == "photo_too_large"
    assert "1000" in caught.value.detail


def test_exactly_max_bytes_is_accepted() -> None:
    data = encode(scene(), "JPEG")

    assert process_photo(data, max_bytes=len(data), max_pixels=1_000_000).sha256


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: b"", id="empty"),
        pytest.param(lambda: b"Pothole on Elm Street, photo to follow.", id="text"),
        pytest.param(lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", id="pdf"),
        pytest.param(lambda: encode(scene(), "GIF"), id="gif"),
        pytest.param(lambda: encode(scene(), "BMP"), id="bmp"),
        pytest.param(lambda: encode(scene(), "TIFF"), id="tiff"),
    ],
)
def test_other_files_are_not_images(make: Callable[[], bytes]) -> None:
    with pytest.raises(NotAnImage) as caught:
        process(make())

    assert caught.value.code == "not_an_image"
    assert isinstance(caught.value, PhotoError)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "HEIF", "WEBP"])
def test_cut_short_image_is_truncated(fmt: str) -> None:
    data = encode(noisy(), fmt)

    with pytest.raises(TruncatedImage) as caught:
        process(data[: len(data) // 2])

    assert caught.value.code == "truncated_image"


@pytest.mark.timeout(10)
def test_bomb_header_beyond_pillow_ceiling_is_refused() -> None:
    # 10^10 pixels: decoding would need 30 GB.
    with pytest.raises(DecompressionBomb) as caught:
        process(png_with_header(100_000, 100_000))

    assert caught.value.code == "decompression_bomb"


def test_bomb_header_over_max_pixels_is_refused_without_decoding() -> None:
    # Within Pillow's own limit, so only our check can refuse it. Decoding would have
    # allocated 192 MB and then failed on the tiny pixel data as a TruncatedImage.
    data = png_with_header(8000, 8000)

    with pytest.raises(DecompressionBomb):
        process_photo(data, max_bytes=10_000, max_pixels=10_000_000)


def test_max_pixels_counts_the_header_size() -> None:
    data = encode(scene((400, 300)), "PNG")

    assert process_photo(data, max_bytes=10**6, max_pixels=120_000).width == 400
    with pytest.raises(DecompressionBomb):
        process_photo(data, max_bytes=10**6, max_pixels=119_999)


def test_pillow_bomb_warning_raised_as_error_is_a_bomb() -> None:
    # 10^8 pixels is past Pillow's warning threshold but not its error ceiling; under
    # "python -W error" the warning surfaces as an exception.
    data = png_with_header(10_000, 10_000)

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DecompressionBomb):
            process_photo(data, max_bytes=10_000, max_pixels=10**9)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_bytes": 0},
        {"max_pixels": 0},
        {"public_max_px": 0},
        {"thumb_max_px": -1},
        {"jpeg_quality": 0},
        {"jpeg_quality": 101},
    ],
)
def test_nonsense_settings_name_the_argument(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        process(encode(scene(), "JPEG"), **bad)
