"""The map pages' JSON and files, through the app: the public markers carry no personal data,
the basemap is the city's wards and streets (bounded), and only allow-listed files are served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import MapsSettings, Settings
from maps.assets import NPM_FILES, vendor_url
from tests.support import pooled_app


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, maps=MapsSettings(basemap_max_streets=10))
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def test_the_public_markers_are_the_open_incidents_with_no_personal_data(
    client: TestClient, demo_db: Database
) -> None:
    body = client.get("/api/v1/map/incidents").json()
    with demo_db.session() as s:
        open_count = s.execute(
            text(
                "SELECT count(*) FROM incidents WHERE status NOT IN "
                "('completed', 'closed', 'cancelled', 'transferred')"
            )
        ).scalar_one()
        emails = set(
            s.execute(text("SELECT email FROM requesters WHERE email IS NOT NULL")).scalars()
        )
    assert open_count > 0
    assert len([i for i in body["incidents"] if not i["fixed"]]) == open_count
    shown = str(body)
    assert emails
    assert not any(e in shown for e in emails)
    assert not any(k in body["incidents"][0] for k in ("email", "phone", "requester", "photo"))


def test_the_basemap_is_the_wards_and_streets_of_the_city_and_bounded(
    client: TestClient, demo_db: Database
) -> None:
    whole = client.get("/api/v1/basemap").json()
    with demo_db.session() as s:
        wards = s.execute(text("SELECT count(*) FROM wards")).scalar_one()
    assert len(whole["wards"]["features"]) == wards
    assert {f["geometry"]["type"] for f in whole["wards"]["features"]} <= {
        "Polygon",
        "MultiPolygon",
    }
    # basemap_max_streets=10: the longest ten, and it says more were left out
    assert len(whole["streets"]["features"]) == 10
    assert whole["streets_truncated"] is True
    assert all(f["geometry"]["type"] == "LineString" for f in whole["streets"]["features"])
    # a box away from the city: nothing to draw, not an error
    far = client.get("/api/v1/basemap", params={"bbox": "100,10,101,11"}).json()
    assert far["wards"]["features"] == []
    assert far["streets"]["features"] == []


@pytest.mark.parametrize(
    "bbox", ["1,2,3", "a,b,c,d", "nan,0,1,1", "5,0,1,1", "0,0,1,95", "-200,0,1,1", ""]
)
def test_a_bad_bbox_is_a_422_naming_it(client: TestClient, bbox: str) -> None:
    response = client.get("/api/v1/basemap", params={"bbox": bbox})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["bbox"]


def test_allow_listed_vendor_files_are_served_with_long_caching(client: TestClient) -> None:
    response = client.get(vendor_url("leaflet", "dist/leaflet.js"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "immutable" in response.headers["cache-control"]
    assert b"Leaflet" in response.content[:500]
    image = client.get(vendor_url("leaflet", "dist/images/layers.png"))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "path",
    [
        "/assets/vendor/leaflet@1.9.4/package.json",  # in the package, not on the list
        "/assets/vendor/leaflet@0.7.0/dist/leaflet.js",  # another version
        "/assets/vendor/leaflet@1.9.4/dist/../../../pyproject.toml",
        "/assets/vendor/leaflet@1.9.4/dist/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/assets/vendor/leaflet@1.9.4/dist/",
        "/assets/vendor/",
        "/assets/maps/",
        "/assets/maps/..%2fassets.py",
        "/assets/maps/shell.html",
    ],
)
def test_nothing_off_the_lists_is_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_every_allow_listed_file_is_installed(client: TestClient) -> None:
    for package, files in NPM_FILES.items():
        for file in files:
            assert client.get(vendor_url(package, file)).status_code == 200, (package, file)
    module = client.get("/assets/maps/public-map.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")


def test_recently_fixed_incidents_show_as_fixed_and_old_or_cancelled_ones_not(
    client: TestClient, demo_db: Database
) -> None:
    with demo_db.session() as s:
        ids = list(
            s.execute(
                text("SELECT id FROM incidents WHERE status = 'new' ORDER BY id LIMIT 3")
            ).scalars()
        )
        for incident_id, status, days_ago in zip(
            ids, ("completed", "closed", "cancelled"), (2, 60, 1), strict=True
        ):
            s.execute(
                text(
                    "UPDATE incidents SET status = :st, "
                    "closed_at = now() - make_interval(days => :d) WHERE id = :id"
                ),
                {"st": status, "d": days_ago, "id": incident_id},
            )
        rows = s.execute(
            text(
                "SELECT DISTINCT ON (incident_id) incident_id, tracking_id FROM reports "
                "WHERE incident_id = ANY(:ids) ORDER BY incident_id, reported_at, id"
            ),
            {"ids": ids},
        ).all()
        tracking: dict[int, str] = {r.incident_id: r.tracking_id for r in rows}
    shown = {i["tracking_id"]: i for i in client.get("/api/v1/map/incidents").json()["incidents"]}
    assert shown[tracking[ids[0]]]["fixed"] is True  # completed 2 days ago
    assert tracking[ids[1]] not in shown  # closed 60 days ago (the window is 30)
    assert tracking[ids[2]] not in shown  # cancelled: nothing was fixed
