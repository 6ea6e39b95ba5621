"""The answer to a new report is built from what intake wrote, not read back: it must show
exactly what following the report (GET) shows."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.support import pooled_app


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", public_base_url="http://testserver")
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _near_streetlight(db: Database) -> tuple[float, float]:
    """Return (lon, lat) 5 m from a streetlight inside a ward: the snap finds it."""
    with db.session() as s:
        lon, lat = s.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM ("
                " SELECT a.jurisdiction_id AS j,"
                " ST_Project(a.geom::geography, 5, radians(45))::geometry AS p"
                " FROM assets a WHERE a.asset_type = 'streetlight' ORDER BY a.id) AS q"
                " WHERE EXISTS (SELECT 1 FROM wards w"
                " WHERE w.jurisdiction_id = q.j AND ST_Covers(w.geom, q.p)) LIMIT 1"
            )
        ).one()
    return float(lon), float(lat)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buf, "JPEG")
    return buf.getvalue()


def _post(client: TestClient, lon: float, lat: float, email: str) -> dict[str, object]:
    response = client.post(
        "/api/v1/reports",
        data={
            "category": "streetlight_out",
            "lon": str(lon),
            "lat": str(lat),
            "email": email,
            "description": "dark since Monday",
        },
        files={"photo": ("lamp.jpg", _jpeg(), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_answer_to_a_new_report_is_what_following_it_shows(
    demo_db: Database, client: TestClient
) -> None:
    lon, lat = _near_streetlight(demo_db)

    first = _post(client, lon, lat, "first@example.org")

    assert first == client.get(f"/api/v1/reports/{first['tracking_id']}").json()
    assert first["asset"] is not None
    assert first["photo_url"] is not None
    assert first["report_count"] == 1

    second = _post(client, lon, lat, "second@example.org")

    # The same lamp: the second report joins the first one's problem, and says so.
    assert second["report_count"] == 2
    assert second["status"] == first["status"]
    assert second == client.get(f"/api/v1/reports/{second['tracking_id']}").json()
