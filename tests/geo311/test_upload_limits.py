"""Upload limits: decode memory, waiting for room, pixel caps, file modes, text for a photo.

The API tests run the real app on the demo city in a real PostGIS; the gate tests use real
threads. Every image is generated here with Pillow.
"""

from __future__ import annotations

import io
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import text

from fixtures.demo_city import PHOTO_WARDS
from geo311.kernel.database import Database
from geo311.kernel.errors import PayloadTooLarge
from geo311.kernel.media import photos, uploads
from geo311.kernel.settings import MediaSettings, Settings
from tests.support import pooled_app

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"
TABLES = ("reports", "incidents", "photos", "requesters")
MB = 1024 * 1024


def _scene(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (200, 210, 190))
    w, h = size
    ImageDraw.Draw(image).ellipse((w // 8, h // 6, w // 2, h * 5 // 6), fill=(40, 60, 160))
    return image


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def _files(root: Path) -> list[Path]:
    media = root / "media"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def _pin(db: Database) -> dict[str, str]:
    with db.session() as s:
        lat, lon = s.execute(
            text(
                "SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                "FROM wards ORDER BY code LIMIT 1"
            )
        ).one()
    return {"category": "pothole", "lat": str(lat), "lon": str(lon)}


def _client(demo_db: Database, settings: Settings) -> TestClient:
    return TestClient(pooled_app(settings, db=demo_db))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Values of their own, so these tests get a decode gate no other test shares.
    media = MediaSettings(
        max_pixels=4_000_000, public_max_px=1024, decode_memory_mb=97, decode_wait_s=0.3
    )
    return Settings(data_dir=tmp_path, jurisdiction="demo", media=media)


@pytest.fixture
def client(demo_db: Database, settings: Settings) -> Iterator[TestClient]:
    with _client(demo_db, settings) as c:
        yield c


# --- files on disk --------------------------------------------------------------------------


def test_private_original_is_readable_only_by_the_service_user(
    client: TestClient, settings: Settings
) -> None:
    name = sorted(PHOTO_WARDS)[0]
    data = (PHOTOS / name).read_bytes()

    resp = client.post(
        "/api/v1/reports", data={"category": "pothole"}, files={"photo": (name, data, "image/jpeg")}
    )

    assert resp.status_code == 201, resp.text
    media = settings.data_dir / "media"
    originals = [p for p in _files(settings.data_dir) if "private" in p.parts]
    assert [p.read_bytes() for p in originals] == [data]
    assert stat.S_IMODE(originals[0].stat().st_mode) == 0o600
    directory = originals[0].parent
    while directory != media:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        directory = directory.parent
    public = [p for p in _files(settings.data_dir) if "public" in p.parts]
    assert len(public) == 2
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in public)


# --- a photo sent as text -------------------------------------------------------------------


@pytest.mark.parametrize("body", ["multipart", "urlencoded", "json"])
def test_a_photo_sent_as_text_is_refused_naming_the_field(
    client: TestClient, demo_db: Database, settings: Settings, body: str
) -> None:
    fields = _pin(demo_db)
    before = _counts(demo_db)
    if body == "multipart":
        # A multipart body whose photo part has no filename: text, not a file.
        resp = client.post(
            "/api/v1/reports",
            data={**fields, "photo": "IMG_2041.jpg"},
            files={"unrelated": ("x.txt", b"forces multipart", "text/plain")},
        )
    elif body == "urlencoded":
        resp = client.post("/api/v1/reports", data={**fields, "photo": "IMG_2041.jpg"})
    else:
        resp = client.post("/api/v1/reports", json={**fields, "photo": "data:image/jpeg;base64,"})

    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["code"] == "validation_failed"
    assert [e["field"] for e in problem["errors"]] == ["photo"]
    assert "file" in problem["detail"]
    assert _counts(demo_db) == before
    assert _files(settings.data_dir) == []


@pytest.mark.parametrize("part", ["empty file input", "empty text"])
def test_an_empty_photo_field_means_no_photo(
    client: TestClient, demo_db: Database, part: str
) -> None:
    # What a browser sends for a file input left empty: a file part with an empty filename.
    disposition = 'name="photo"; filename=""' if part == "empty file input" else 'name="photo"'
    boundary = "geo311boundary"
    parts = [f'name="{k}"\r\n\r\n{v}' for k, v in _pin(demo_db).items()]
    parts.append(f"{disposition}\r\nContent-Type: application/octet-stream\r\n\r\n")
    body = "".join(f"--{boundary}\r\nContent-Disposition: form-data; {p}\r\n" for p in parts)
    resp = client.post(
        "/api/v1/reports",
        content=(body + f"--{boundary}--\r\n").encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )

    assert resp.status_code == 201, resp.text
    assert resp.json()["photo_url"] is None


# --- pixel caps and decoding at reduced scale ----------------------------------------------


def test_a_just_under_cap_jpeg_is_decoded_at_reduced_scale() -> None:
    media = MediaSettings(max_pixels=6000 * 4000, public_max_px=1024, thumb_max_px=200)
    data = _encode(_scene((6000, 4000)), "JPEG", quality=80)
    seen: list[int] = []
    room = uploads.DecodeGate(budget_bytes=10**10, max_concurrent=1, wait_s=0)

    def gate(cost: int) -> AbstractContextManager[None]:
        seen.append(cost)
        return room.hold(cost)

    photo = photos.process_photo(
        data,
        max_bytes=len(data),
        max_pixels=media.max_pixels,
        public_max_px=media.public_max_px,
        thumb_max_px=media.thumb_max_px,
        decode_gate=gate,
    )

    # libjpeg decoded at 1/4 scale: the smallest that still covers the 1024 px public copy.
    assert photo.decoded_size == (1500, 1000)
    assert (photo.width, photo.height) == (6000, 4000)
    assert Image.open(io.BytesIO(photo.public_jpeg)).size == (1024, 683)
    # The gate was asked for well under what the full 24 MP (96 MB in Pillow) would hold.
    assert seen == [photo.decode_cost]
    assert photo.decode_cost < 6000 * 4000 * 4 // 2


def test_a_png_just_under_the_cap_is_accepted_through_the_api(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    side = int(settings.media.max_pixels**0.5)
    data = _encode(_scene((side, side)), "PNG")

    resp = client.post(
        "/api/v1/reports", data=_pin(demo_db), files={"photo": ("big.png", data, "image/png")}
    )

    assert resp.status_code == 201, resp.text
    public = client.get(resp.json()["photo_url"].replace("http://testserver", ""))
    assert Image.open(io.BytesIO(public.content)).size == (1024, 1024)


def test_one_pixel_over_the_cap_is_refused_and_nothing_stored(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    cap = settings.media.max_pixels
    data = _encode(_scene((cap // 1000 + 1, 1000)), "PNG")
    before = _counts(demo_db)

    resp = client.post(
        "/api/v1/reports", data=_pin(demo_db), files={"photo": ("big.png", data, "image/png")}
    )

    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["reason"] == "decompression_bomb"
    assert str(cap) in problem["detail"]
    assert _counts(demo_db) == before
    assert _files(settings.data_dir) == []


def test_an_image_too_big_for_the_whole_budget_is_refused_with_413(
    demo_db: Database, tmp_path: Path
) -> None:
    # 3000 x 3000 RGBA: the decoded image and its premultiplied copy alone are 72 MB.
    media = MediaSettings(max_pixels=10_000_000, decode_memory_mb=40, decode_wait_s=0.3)
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", media=media)
    data = _encode(_scene((3000, 3000)).convert("RGBA"), "PNG")
    before = _counts(demo_db)

    with _client(demo_db, settings) as client:
        resp = client.post(
            "/api/v1/reports", data=_pin(demo_db), files={"photo": ("a.png", data, "image/png")}
        )

    assert resp.status_code == 413, resp.text
    problem = resp.json()
    assert problem["reason"] == "photo_too_large_to_decode"
    assert "40 MB" in problem["detail"]
    assert _counts(demo_db) == before
    assert _files(tmp_path) == []


# --- waiting for decode room ---------------------------------------------------------------


def test_a_decode_that_cannot_get_room_in_time_gets_503_with_retry_after(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    gate = uploads.gate_for(settings.media)
    data = _encode(_scene((1200, 900)), "JPEG")
    before = _counts(demo_db)
    held, done = threading.Event(), threading.Event()

    def occupy() -> None:
        with gate.hold(gate.budget_bytes):
            held.set()
            done.wait(10)

    hog = threading.Thread(target=occupy)
    hog.start()
    try:
        assert held.wait(5)
        resp = client.post(
            "/api/v1/reports", data=_pin(demo_db), files={"photo": ("a.jpg", data, "image/jpeg")}
        )
    finally:
        done.set()
        hog.join()

    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["code"] == "photo_decoding_busy"
    assert _counts(demo_db) == before
    assert _files(settings.data_dir) == []
    # Once the room is free again the same upload goes through.
    again = client.post(
        "/api/v1/reports", data=_pin(demo_db), files={"photo": ("a.jpg", data, "image/jpeg")}
    )
    assert again.status_code == 201, again.text


def test_decodes_share_the_budget_and_start_first_come_first_served() -> None:
    gate = uploads.DecodeGate(budget_bytes=100, max_concurrent=8, wait_s=10)
    lock = threading.Lock()
    started: list[str] = []
    peak = 0

    def decode(name: str, cost: int, hold_s: float) -> None:
        nonlocal peak
        with gate.hold(cost):
            with lock:
                started.append(name)
                peak = max(peak, gate.held_bytes)
            time.sleep(hold_s)

    first = threading.Thread(target=decode, args=("big-1", 70, 0.3))
    first.start()
    time.sleep(0.05)
    # big-2 cannot fit beside big-1; small arrives after big-2 and must not overtake it,
    # although it would fit beside big-1.
    second = threading.Thread(target=decode, args=("big-2", 70, 0.1))
    second.start()
    time.sleep(0.05)
    third = threading.Thread(target=decode, args=("small", 20, 0.0))
    third.start()
    for thread in (first, second, third):
        thread.join()

    assert started == ["big-1", "big-2", "small"]
    assert peak <= 100
    assert gate.held_bytes == 0


def test_max_concurrent_decodes_caps_the_count_even_with_room() -> None:
    gate = uploads.DecodeGate(budget_bytes=10**9, max_concurrent=2, wait_s=10)
    lock = threading.Lock()
    running = peak = 0

    def decode() -> None:
        nonlocal running, peak
        with gate.hold(1):
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.05)
            with lock:
                running -= 1

    threads = [threading.Thread(target=decode) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak == 2


def test_a_cost_over_the_budget_is_refused_without_waiting() -> None:
    gate = uploads.DecodeGate(budget_bytes=100, max_concurrent=1, wait_s=60)

    started = time.monotonic()
    with pytest.raises(PayloadTooLarge), gate.hold(101):
        pass

    assert time.monotonic() - started < 1
    assert gate.held_bytes == 0
