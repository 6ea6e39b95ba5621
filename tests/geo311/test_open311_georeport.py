"""An Open311 client from PyPI (``georeport``) talks to geo311 over real HTTP, in both
formats: the app runs under uvicorn on a free loopback port in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import uvicorn
from georeport import GeoReport  # type: ignore[import-untyped]

from fixtures.demo_attributes import ATTRIBUTES
from fixtures.demo_city import PHOTO_WARDS
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.geo311.open311_helpers import BASE, PHOTOS, api_key, settings
from tests.geo311.open311_shapes import check_xml, text_of
from tests.support import pooled_app

__all__ = ["api_key", "settings"]  # fixtures used by name below

WINDOW = {"start_date": "2026-05-01T00:00:00Z", "end_date": "2026-06-01T12:00:00Z"}


@pytest.fixture
def live_url(demo_db: Database, settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            # Links point at this server: the public base URL is where it listens.
            pooled_app(
                settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"}),
                db=demo_db,
            ),
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _as_list(value: Any) -> list[Any]:
    """xmltodict gives one child as a dict and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _db_ids(db: Database, sql: str, **params: Any) -> set[str]:
    from sqlalchemy import text

    with db.session() as s:
        return set(s.scalars(text(sql), params))


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_the_georeport_client_reads_services_definitions_and_requests(
    live_url: str, demo_db: Database, fmt: str
) -> None:
    client = GeoReport(f"{live_url}{BASE}", jurisdiction="demo", output_format=fmt)

    services = client.get_service_list()
    codes = _db_ids(demo_db, "SELECT code FROM service_categories WHERE active")
    assert {s["service_code"] for s in services} == codes
    with_metadata = {s["service_code"] for s in services if str(s["metadata"]).lower() == "true"}
    assert with_metadata == set(ATTRIBUTES)

    definition = client.get_service_definition("illegal_dumping")
    attributes = definition["attributes"]
    if fmt == "xml":
        attributes = _as_list(attributes["attribute"])
    assert [a["code"] for a in attributes] == [d.code for d in ATTRIBUTES["illegal_dumping"]]
    values = attributes[0]["values"]
    if fmt == "xml":
        values = _as_list(values["value"])
    assert [v["key"] for v in values] == [c.key for c in ATTRIBUTES["illegal_dumping"][0].choices]

    closed = client.get_service_requests(service_code="pothole", status="closed", **WINDOW)
    expected = _db_ids(
        demo_db,
        "SELECT r.tracking_id FROM reports r JOIN incidents i ON i.id = r.incident_id "
        "WHERE r.category_code = 'pothole' AND i.status = 'closed' "
        "AND r.reported_at BETWEEN :s AND :e",
        s=WINDOW["start_date"],
        e=WINDOW["end_date"],
    )
    assert expected, "the demo month should have closed potholes"
    assert {r["service_request_id"] for r in _as_list(closed)} == expected

    one = client.get_service_request(sorted(expected)[0])
    assert one["service_request_id"] == sorted(expected)[0]
    assert one["status"] == "closed"
    assert one["service_code"] == "pothole"

    picked = client.get_service_requests(service_request_id=",".join(sorted(expected)[:2]))
    assert {r["service_request_id"] for r in _as_list(picked)} == set(sorted(expected)[:2])


def test_a_multipart_post_over_http_is_read_back_by_the_client(live_url: str, api_key: str) -> None:
    name = "tree_down_ward2.jpg"
    resp = requests.post(
        f"{live_url}{BASE}/requests.xml",
        data={
            "api_key": api_key,
            "jurisdiction_id": "demo",
            "service_code": "tree_down",
            "attribute[blocking][]": ["road", "wires"],
            "description": "Big limb across the road",
        },
        files={"media": (name, (PHOTOS / name).read_bytes(), "image/jpeg")},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/xml; charset=utf-8"
    srid = text_of(check_xml("posted", resp.content)[0], "service_request_id")

    for fmt in ("xml", "json"):
        client = GeoReport(f"{live_url}{BASE}", jurisdiction="demo", output_format=fmt)
        request = client.get_service_request(srid)
        assert request["status"] == "open"
        assert request["service_code"] == "tree_down"
        assert request["description"] == "Big limb across the road"
        assert request["media_url"].startswith(f"{live_url}/media/public/")
        assert requests.get(request["media_url"], timeout=30).headers["content-type"] == (
            "image/jpeg"
        )
    with_ext = requests.get(
        f"{live_url}{BASE}/requests/{srid}.json", params={"extensions": "true"}, timeout=30
    ).json()[0]
    assert with_ext["extended_attributes"]["ward"] == PHOTO_WARDS[name]
    assert [a["value"] for a in with_ext["attributes"]] == ["road", "wires"]
