"""Links the API hands out (photo URLs, Open311's media_url and discovery endpoint) use the
configured public base URL, never the Host header a caller sent."""

from __future__ import annotations

from fastapi.testclient import TestClient

from geo311.kernel.database import Database
from tests.geo311.open311_helpers import (
    api_key,
    client,
    settings,
    ward_points,
)
from tests.support import jpeg

__all__ = ["api_key", "client", "settings"]  # fixtures used by name below

EVIL = {"Host": "evil.example"}


def test_a_forged_host_header_never_reaches_a_link(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["4"]
    report = client.post(
        "/api/v1/reports",
        data={"category": "pothole", "lat": str(lat), "lon": str(lon)},
        files={"photo": ("p.jpg", jpeg(), "image/jpeg")},
        headers=EVIL,
    )
    assert report.status_code == 201, report.text
    assert report.json()["photo_url"].startswith("http://testserver/media/public/")
    tracking = report.json()["tracking_id"]
    shown = client.get(f"/api/v1/reports/{tracking}", headers=EVIL).json()
    assert shown["photo_url"].startswith("http://testserver/media/")
    [request] = client.get(f"/open311/v2/requests/{tracking}.json", headers=EVIL).json()
    assert request["media_url"].startswith("http://testserver/media/")
    discovery = client.get("/open311/v2/discovery.json", headers=EVIL).json()
    assert [e["url"] for e in discovery["endpoints"]] == ["http://testserver/open311/v2"]
    assert "evil.example" not in client.get("/open311/v2/discovery.xml", headers=EVIL).text
