"""Report intake through the HTTP API, on the demo city in a real PostGIS."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from fixtures.demo_city import PHOTO_WARDS
from geo311.kernel.database import Database
from geo311.kernel.settings import MediaSettings, Settings
from tests.support import pooled_app

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"
TABLES = ("reports", "incidents", "photos", "requesters")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        jurisdiction="demo",
        public_base_url="http://testserver",
        media=MediaSettings(max_bytes=2_000_000, max_pixels=30_000_000),
    )


@pytest.fixture
def client(demo_db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _ward_points(db: Database) -> dict[str, tuple[float, float]]:
    """Return a point well inside each demo ward, by ward code: (lat, lon)."""
    with db.session() as s:
        rows = s.execute(
            text(
                "SELECT code, ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                "FROM wards"
            )
        ).all()
    return {code: (lat, lon) for code, lat, lon in rows}


def _counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def _files(root: Path) -> list[Path]:
    media = root / "media"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 120, 120)).save(buf, "JPEG")
    return buf.getvalue()


def _png_bomb() -> bytes:
    """A tiny PNG whose header claims 100,000 × 100,000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_a_pinned_report_lands_in_its_ward_and_can_be_followed(
    client: TestClient, demo_db: Database
) -> None:
    points = _ward_points(demo_db)
    for code, (lat, lon) in sorted(points.items()):
        resp = client.post(
            "/api/v1/reports",
            data={
                "category": "pothole",
                "lat": str(lat),
                "lon": str(lon),
                "email": "me@example.org",
            },
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["ward"]["code"] == code
        # Every ward is covered by the paving crew: the pothole is with it at once.
        assert body["status"] == "assigned"
        assert body["location"] == {
            "type": "Point",
            "coordinates": [pytest.approx(lon), pytest.approx(lat)],
        }
        assert body["location_source"] == "pin"
        followed = client.get(f"/api/v1/reports/{body['tracking_id']}")
        assert followed.status_code == 200
        assert followed.json()["ward"]["code"] == code
        assert "me@example.org" not in followed.text


@pytest.mark.parametrize("name", sorted(PHOTO_WARDS))
def test_a_photo_without_a_pin_is_placed_by_its_gps(
    client: TestClient, settings: Settings, name: str
) -> None:
    data = (PHOTOS / name).read_bytes()
    resp = client.post(
        "/api/v1/reports",
        data={"category": "pothole"},
        files={"photo": (name, data, "image/jpeg")},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["location_source"] == "exif"
    assert body["ward"]["code"] == PHOTO_WARDS[name]

    public = client.get(body["photo_url"].replace("http://testserver", ""))
    assert public.status_code == 200
    img = Image.open(io.BytesIO(public.content))
    assert img.format == "JPEG"
    assert not img.getexif()
    assert "exif" not in img.info
    assert "xmp" not in img.info
    assert b"Exif" not in public.content
    thumb = client.get(body["thumbnail_url"].replace("http://testserver", ""))
    assert thumb.status_code == 200
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320

    # The original, with its EXIF, is kept — but never served.
    originals = [p for p in _files(settings.data_dir) if "private" in p.parts]
    assert len(originals) == 1
    assert originals[0].read_bytes() == data
    rel = originals[0].relative_to(settings.data_dir / "media").as_posix()
    assert client.get(f"/media/{rel}").status_code == 404


def test_a_pin_wins_over_the_photo_gps(client: TestClient, demo_db: Database) -> None:
    name, photo_ward = next(iter(sorted(PHOTO_WARDS.items())))
    other_ward, (lat, lon) = next(
        (c, p) for c, p in _ward_points(demo_db).items() if c != photo_ward
    )
    resp = client.post(
        "/api/v1/reports",
        data={"category": "graffiti", "lat": str(lat), "lon": str(lon)},
        files={"photo": (name, (PHOTOS / name).read_bytes(), "image/jpeg")},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["ward"]["code"] == other_ward
    assert resp.json()["location_source"] == "pin"


def test_a_streetlight_report_snaps_to_the_nearest_streetlight(
    client: TestClient, demo_db: Database
) -> None:
    with demo_db.session() as s:
        ext_id, lat, lon = s.execute(
            text(
                "SELECT external_id, ST_Y(geom), ST_X(geom) FROM assets "
                "WHERE asset_type = 'streetlight' ORDER BY external_id LIMIT 1"
            )
        ).one()
    # About 8 m north of the light.
    resp = client.post(
        "/api/v1/reports",
        data={"category": "streetlight_out", "lat": str(lat + 0.00007), "lon": str(lon)},
    )
    assert resp.status_code == 201, resp.text
    asset = resp.json()["asset"]
    assert asset["type"] == "streetlight"
    assert asset["external_id"] == ext_id
    assert 5 < asset["distance_m"] < 11


def test_no_streetlight_within_the_snap_radius_means_no_asset(
    client: TestClient, demo_db: Database
) -> None:
    with demo_db.session() as s:
        # A point in the city farthest from any streetlight among the ward centres.
        lat, lon = s.execute(
            text(
                # Each table filtered by the city, as the app's own queries are (on Citus a
                # statement stays on one shard only so).
                "SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_PointOnSurface(geom) p FROM wards "
                "                             WHERE jurisdiction_id = 1) w "
                "ORDER BY (SELECT min(ST_Distance(a.geom::geography, w.p::geography)) "
                "          FROM assets a WHERE a.jurisdiction_id = 1 "
                "          AND a.asset_type = 'streetlight') DESC LIMIT 1"
            )
        ).one()
        nearest = s.execute(
            text(
                "SELECT min(ST_Distance(geom::geography, ST_MakePoint(:lon, :lat)::geography)) "
                "FROM assets WHERE asset_type = 'streetlight'"
            ),
            {"lat": lat, "lon": lon},
        ).scalar_one()
    assert nearest > 40, "the demo city should have a spot with no streetlight within 40 m"
    resp = client.post(
        "/api/v1/reports", data={"category": "streetlight_out", "lat": str(lat), "lon": str(lon)}
    )
    assert resp.status_code == 201
    assert resp.json()["asset"] is None


def test_json_fields_without_a_photo(client: TestClient, demo_db: Database) -> None:
    lat, lon = _ward_points(demo_db)["1"]
    resp = client.post(
        "/api/v1/reports", json={"category": "graffiti", "lat": lat, "lon": lon, "language": "es"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["ward"]["code"] == "1"


def _bad_requests(
    inside: tuple[float, float],
) -> list[tuple[str, dict[str, str], bytes | None, int, str]]:
    lat, lon = str(inside[0]), str(inside[1])
    ok = {"category": "pothole", "lat": lat, "lon": lon}
    jpeg = _jpeg()
    return [
        ("unknown category", {**ok, "category": "alien_landing"}, None, 422, "unknown_category"),
        ("no location at all", {"category": "pothole"}, None, 422, "location_missing"),
        ("photo without GPS and no pin", {"category": "pothole"}, jpeg, 422, "location_missing"),
        ("latitude out of range", {**ok, "lat": "123"}, None, 422, "validation_failed"),
        ("longitude not a number", {**ok, "lon": "west"}, None, 422, "validation_failed"),
        (
            "outside the jurisdiction",
            {**ok, "lat": "51.5", "lon": "-0.12"},
            None,
            422,
            "outside_jurisdiction",
        ),
        ("not an image", ok, b"%PDF-1.4 definitely not a photo", 415, "unsupported_media_type"),
        ("truncated image", ok, _jpeg((800, 600))[:1500], 422, "bad_photo"),
        ("decompression bomb", ok, _png_bomb(), 422, "bad_photo"),
        ("over the size cap", ok, b"\xff\xd8" + b"\0" * 2_100_000, 413, "payload_too_large"),
        ("description too long", {**ok, "description": "x" * 4001}, None, 422, "validation_failed"),
    ]


def test_bad_input_gets_problem_json_and_stores_nothing(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    before = _counts(demo_db)
    cases = _bad_requests(_ward_points(demo_db)["2"])
    for label, data, photo, status, code in cases:
        files = {"photo": ("x.jpg", photo, "image/jpeg")} if photo is not None else None
        resp = client.post("/api/v1/reports", data=data, files=files)
        assert resp.status_code == status, f"{label}: {resp.status_code} {resp.text}"
        assert resp.headers["content-type"] == "application/problem+json", label
        problem = resp.json()
        assert problem["code"] == code, label
        assert problem["status"] == status, label
        assert problem["title"], label
        assert problem["detail"], label
        assert _counts(demo_db) == before, f"{label}: rows were stored"
        assert _files(settings.data_dir) == [], f"{label}: files were stored"


def test_a_failed_transaction_removes_the_photo_files(
    demo_db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geo311.kernel.media import service as media_service
    from geo311.kernel.media import store as media_module

    def _boom(*_: object, **__: object) -> None:
        raise RuntimeError("database went away")

    # Fail after the photo files were written, before the commit.
    original_stage = media_module.stage_files

    def _stage_then_fail(*args: object, **kwargs: object) -> None:
        original_stage(*args, **kwargs)  # type: ignore[arg-type]
        assert _files(settings.data_dir), "files should exist before the failure"
        _boom()

    monkeypatch.setattr(media_service, "stage_files", _stage_then_fail)
    name = sorted(PHOTO_WARDS)[0]
    before = _counts(demo_db)
    client = TestClient(pooled_app(settings, db=demo_db), raise_server_exceptions=False)
    resp = client.post(
        "/api/v1/reports",
        data={"category": "pothole"},
        files={"photo": (name, (PHOTOS / name).read_bytes(), "image/jpeg")},
    )
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert _counts(demo_db) == before
    assert _files(settings.data_dir) == []


def test_unknown_tracking_id_is_a_problem_404(client: TestClient) -> None:
    resp = client.get("/api/v1/reports/R-0000-0000-00")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"


def test_categories_are_listed(client: TestClient) -> None:
    codes = {c["code"] for c in client.get("/api/v1/categories").json()}
    assert {"pothole", "streetlight_out", "hydrant_leak", "tree_down", "graffiti"} <= codes


def test_the_reporter_is_subscribed_and_the_opening_is_audited(
    client: TestClient, demo_db: Database
) -> None:
    lat, lon = _ward_points(demo_db)["3"]
    resp = client.post(
        "/api/v1/reports",
        data={"category": "graffiti", "lat": str(lat), "lon": str(lon), "email": "sub@example.org"},
    )
    assert resp.status_code == 201
    with demo_db.session() as s:
        subscriber = s.execute(
            text(
                "SELECT q.email FROM subscriptions sub "
                "JOIN reports r ON r.jurisdiction_id = sub.jurisdiction_id "
                " AND r.incident_id = sub.incident_id "
                "JOIN requesters q ON q.jurisdiction_id = sub.jurisdiction_id "
                " AND q.id = sub.requester_id "
                "WHERE r.tracking_id = :t"
            ),
            {"t": resp.json()["tracking_id"]},
        ).scalar_one()
        actions = s.execute(
            text(
                "SELECT e.action, e.to_state FROM audit_events e JOIN reports r "
                "ON e.entity = 'incident' AND e.entity_id = r.incident_id WHERE r.tracking_id = :t "
                "ORDER BY e.id"
            ),
            {"t": resp.json()["tracking_id"]},
        ).all()
    assert subscriber == "sub@example.org"
    # Opened, then given to the crew the assignment rules chose.
    assert [tuple(a) for a in actions] == [("opened", "new"), ("transition", "assigned")]


def test_a_city_loaded_after_the_server_started_takes_reports(
    db: Database, settings: Settings
) -> None:
    from fixtures.load import load_demo

    with TestClient(pooled_app(settings, db=db)) as c:
        # No city yet: nothing to file the report in (and the miss is not remembered).
        early = c.post("/api/v1/reports", json={"category": "pothole", "lat": 0.0, "lon": 0.0})
        assert early.status_code == 404
        assert "not loaded" in early.json()["detail"]

        load_demo(db, slug="demo")
        ward, (lat, lon) = sorted(_ward_points(db).items())[0]
        late = c.post("/api/v1/reports", json={"category": "pothole", "lat": lat, "lon": lon})
        assert late.status_code == 201, late.text
        assert late.json()["ward"]["code"] == ward
