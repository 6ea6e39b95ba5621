"""The Open311 GeoReport v2 API on the demo city in a real PostGIS: every response parsed with
lxml (or json) and checked against the spec's shapes, the errors included."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from fixtures.demo_attributes import ATTRIBUTES
from fixtures.demo_city import PHOTO_WARDS
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.geo311.open311_helpers import (
    BASE,
    PHOTOS,
    api_key,
    client,
    close_incident,
    counts,
    join_incident,
    media_files,
    settings,
    ward_points,
)
from tests.geo311.open311_shapes import check_json, check_xml, children, text_of, w3c_ok

__all__ = ["api_key", "client", "settings"]  # fixtures used by name below

DEMO_WINDOW = {"start_date": "2026-05-01T00:00:00Z", "end_date": "2026-06-01T12:00:00Z"}
REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]


def _get(client: TestClient, path: str, kind: str, fmt: str = "xml", **params: str) -> Any:
    """GET ``path.fmt``, check status 200, content type and shape; return the parsed body."""
    resp = client.get(f"{BASE}/{path}.{fmt}", params=params)
    assert resp.status_code == 200, resp.text
    if fmt == "xml":
        assert resp.headers["content-type"] == "text/xml; charset=utf-8"
        return check_xml(kind, resp.content)
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    return check_json(kind, resp.content)


def _error(resp: Any, status: int, fmt: str = "xml") -> list[str]:
    """Check an error response's status and shape; return its descriptions."""
    assert resp.status_code == status, resp.text
    if fmt == "xml":
        assert resp.headers["content-type"] == "text/xml; charset=utf-8"
        root = check_xml("errors", resp.content)
        assert {text_of(e, "code") for e in root} == {str(status)}
        return [text_of(e, "description") for e in root]
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    body = check_json("errors", resp.content)
    assert {e["code"] for e in body} == {status}
    return [e["description"] for e in body]


def _ids(root: Any) -> list[str]:
    return [text_of(r, "service_request_id") for r in root]


def _post(
    client: TestClient,
    fields: dict[str, str],
    *,
    fmt: str = "xml",
    files: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
) -> Any:
    return client.post(f"{BASE}/requests.{fmt}", data=fields, files=files, params=query)


def _posted_id(client: TestClient, fields: dict[str, str], **kwargs: Any) -> str:
    resp = _post(client, fields, **kwargs)
    assert resp.status_code == 200, resp.text
    return text_of(check_xml("posted", resp.content)[0], "service_request_id")


def _pothole(key: str, lat: float, lon: float, **extra: str) -> dict[str, str]:
    return {
        "api_key": key,
        "service_code": "pothole",
        "lat": str(lat),
        "long": str(lon),
        "attribute[position]": "lane",
        **extra,
    }


def _db_ids(db: Database, where: str, **params: Any) -> list[str]:
    """Tracking ids of the reports matching ``where``, newest first (the API's order)."""
    with db.session() as s:
        return list(
            s.scalars(
                text(
                    "SELECT r.tracking_id FROM reports r JOIN incidents i "
                    "ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id "
                    f"WHERE {where} ORDER BY r.reported_at DESC, r.id DESC"
                ),
                params,
            )
        )


# --- discovery, services, definitions -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_discovery_names_this_endpoint_and_both_formats(client: TestClient, fmt: str) -> None:
    body = _get(client, "discovery", "discovery", fmt)
    if fmt == "xml":
        assert text_of(body, "endpoints/endpoint/url") == "http://testserver/open311/v2"
        assert text_of(body, "endpoints/endpoint/specification").endswith("GeoReport_v2")
        assert [f.text for f in body.find("endpoints/endpoint/formats")] == [
            "text/xml",
            "application/json",
        ]
        assert w3c_ok(text_of(body, "changeset"))
    else:
        assert isinstance(body, dict)
        assert body["endpoints"][0]["url"] == "http://testserver/open311/v2"
        assert body["endpoints"][0]["formats"] == ["text/xml", "application/json"]


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_services_are_the_active_categories(
    client: TestClient, demo_db: Database, fmt: str
) -> None:
    with demo_db.session() as s:
        categories = {
            code: group
            for code, group in s.execute(
                text("SELECT code, group_code FROM service_categories WHERE active")
            )
        }
    body = _get(client, "services", "services", fmt)
    if fmt == "xml":
        services = {
            text_of(e, "service_code"): (text_of(e, "group"), text_of(e, "metadata")) for e in body
        }
        assert {code: group for code, (group, _) in services.items()} == categories
        metadata = {code for code, (_, flag) in services.items() if flag == "true"}
    else:
        assert isinstance(body, list)
        assert {e["service_code"]: e["group"] for e in body} == categories
        metadata = {e["service_code"] for e in body if e["metadata"] is True}
    # metadata is true exactly for the categories that have questions.
    assert metadata == set(ATTRIBUTES)
    assert "sidewalk_damage" in categories
    assert "sidewalk_damage" not in metadata


def test_service_definitions_carry_datatypes_orders_and_values(client: TestClient) -> None:
    for code, definitions in ATTRIBUTES.items():
        root = _get(client, f"services/{code}", "service_definition")
        assert text_of(root, "service_code") == code
        attributes = root.findall("attributes/attribute")
        assert [text_of(a, "code") for a in attributes] == [d.code for d in definitions]
        for element, definition in zip(attributes, definitions, strict=True):
            assert children(element)[:8] == [
                "variable",
                "code",
                "datatype",
                "required",
                "datatype_description",
                "order",
                "description",
                "values",
            ]
            assert text_of(element, "datatype") == definition.datatype
            assert text_of(element, "required") == str(definition.required).lower()
            assert text_of(element, "variable") == str(definition.variable).lower()
            assert text_of(element, "order") == str(definition.order)
            assert [(text_of(v, "key"), text_of(v, "name")) for v in element.find("values")] == [
                (c.key, c.name) for c in definition.choices
            ]
        body = _get(client, f"services/{code}", "service_definition", "json")
        assert [a["code"] for a in body["attributes"]] == [d.code for d in definitions]
        assert [a["values"] for a in body["attributes"]] == [
            [{"key": c.key, "name": c.name} for c in d.choices] for d in definitions
        ]
    empty = _get(client, "services/sidewalk_damage", "service_definition")
    assert empty.findall("attributes/attribute") == []


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_an_unknown_service_code_is_404(client: TestClient, fmt: str) -> None:
    descriptions = _error(client.get(f"{BASE}/services/alien_landing.{fmt}"), 404, fmt)
    assert "alien_landing" in descriptions[0]


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_an_unknown_jurisdiction_id_is_404_and_ours_is_fine(client: TestClient, fmt: str) -> None:
    for path in ("services", "services/pothole", "requests", "servicerequestupdates"):
        resp = client.get(f"{BASE}/{path}.{fmt}", params={"jurisdiction_id": "atlantis.gov"})
        assert "atlantis.gov" in _error(resp, 404, fmt)[0]
        assert client.get(f"{BASE}/{path}.{fmt}", params={"jurisdiction_id": "demo"}).is_success


def test_unknown_paths_and_formats_answer_in_the_spec_shape(client: TestClient) -> None:
    _error(client.get(f"{BASE}/nothing-here.xml"), 404)
    _error(client.get(f"{BASE}/nothing-here.json"), 404, "json")
    _error(client.get(f"{BASE}/services.html"), 404)
    _error(client.get(f"{BASE}/tokens/no-such-token.json"), 404, "json")
    _error(client.get(f"{BASE}/requests/R-0000-0000-00.xml"), 404)
    _error(client.delete(f"{BASE}/requests.xml"), 404)


# --- POST requests --------------------------------------------------------------------------


def test_a_posted_request_goes_through_intake_and_keeps_its_requester_private(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["2"]
    private = {
        "email": "jo.resident@example.org",
        "first_name": "Josephine",
        "last_name": "Quartermaine",
        "phone": "+1 555 010 9999",
        "device_id": "device-8c1f",
        "account_id": "acct-77",
    }
    # Sent raw, the way many clients send it: charset in the content type, CRLF in the text.
    form = {
        **_pothole(api_key, lat, lon),
        "attribute[depth_cm]": "9",
        "attribute[fixmystreet_id]": "4711",
        "description": "Deep hole\r\nnear the bus stop",
        "address_string": "12 Elm St",
        **private,
    }
    resp = client.post(
        f"{BASE}/requests.xml",
        content=urlencode(form).encode(),
        headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert resp.status_code == 200, resp.text
    posted = check_xml("posted", resp.content)
    assert children(posted[0]) == ["service_request_id", "token", "service_notice", "account_id"]
    srid = text_of(posted[0], "service_request_id")
    assert "72 hours" in text_of(posted[0], "service_notice")

    with demo_db.session() as s:
        row = s.execute(
            text(
                # Each table filtered by the city (on Citus: one shard).
                "SELECT r.channel, r.attributes, w.code AS ward, q.email, q.phone, q.name, "
                "       r.address, (SELECT count(*) FROM subscriptions sub "
                "                   WHERE sub.jurisdiction_id = 1 "
                "                   AND sub.incident_id = r.incident_id) AS subscribers, "
                "       (SELECT array_agg(action ORDER BY id) FROM audit_events e "
                "        WHERE e.jurisdiction_id = 1 AND e.entity = 'incident' "
                "        AND e.entity_id = r.incident_id) AS audited "
                "FROM reports r "
                "JOIN wards w ON w.jurisdiction_id = r.jurisdiction_id AND w.id = r.ward_id "
                "JOIN requesters q ON q.jurisdiction_id = r.jurisdiction_id "
                "AND q.id = r.requester_id "
                "WHERE r.jurisdiction_id = 1 AND r.tracking_id = :t"
            ),
            {"t": srid},
        ).one()
    assert row.channel == "open311"
    assert row.ward == "2"
    assert row.attributes == {"position": "lane", "depth_cm": 9}
    assert (row.email, row.phone, row.name) == (
        "jo.resident@example.org",
        "+1 555 010 9999",
        "Josephine Quartermaine",
    )
    assert row.address == "12 Elm St"
    assert row.subscribers == 1
    # Opened, then given to the paving crew by the assignment rules.
    assert row.audited == ["opened", "transition"]

    request = _get(client, f"requests/{srid}", "requests")[0]
    assert children(request) == REQUEST_FIELDS
    assert text_of(request, "status") == "open"
    assert text_of(request, "service_code") == "pothole"
    assert text_of(request, "description") == "Deep hole\nnear the bus stop"
    assert float(text_of(request, "lat")) == pytest.approx(lat)
    assert float(text_of(request, "long")) == pytest.approx(lon)

    # No requester PII anywhere the public can look.
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    public = [
        client.get(f"{BASE}/requests/{srid}.{fmt}", params={"extensions": "true"}).text
        for fmt in ("xml", "json")
    ] + [
        client.get(f"{BASE}/requests.{fmt}", params={"extensions": "true", "end_date": end}).text
        for fmt in ("xml", "json")
    ]
    public += [client.get(f"{BASE}/servicerequestupdates.{fmt}").text for fmt in ("xml", "json")]
    for page in public:
        assert srid in page
        for value in (*private.values(), "Josephine", "Quartermaine", "555 010"):
            assert value not in page


def test_a_json_post_answers_with_a_bare_array(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["5"]
    resp = _post(
        client,
        {
            "api_key": api_key,
            "service_code": "illegal_dumping",
            "lat": str(lat),
            "long": str(lon),
            "attribute[items][]": ["tyres", "bags"],  # type: ignore[dict-item]
        },
        fmt="json",
    )
    assert resp.status_code == 200, resp.text
    body = check_json("posted", resp.content)
    assert body[0]["account_id"] is None
    with demo_db.session() as s:
        stored = s.execute(
            text("SELECT attributes FROM reports WHERE tracking_id = :t"),
            {"t": body[0]["service_request_id"]},
        ).scalar_one()
    assert stored == {"items": ["tyres", "bags"]}


def test_api_key_and_jurisdiction_may_ride_in_the_query_string(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["1"]
    fields = _pothole(api_key, lat, lon)
    del fields["api_key"]
    resp = _post(client, fields, query={"api_key": api_key, "jurisdiction_id": "demo"})
    assert resp.status_code == 200, resp.text
    check_xml("posted", resp.content)


def _bad_posts(key: str, inside: tuple[float, float]) -> list[tuple[str, dict[str, str], int, str]]:
    lat, lon = inside
    ok = _pothole(key, lat, lon)
    return [
        ("no api_key", {k: v for k, v in ok.items() if k != "api_key"}, 403, "api_key"),
        ("unknown api_key", {**ok, "api_key": "o311_not-a-key"}, 403, "api_key"),
        ("unknown service_code", {**ok, "service_code": "alien_landing"}, 404, "alien_landing"),
        ("no service_code", {**ok, "service_code": ""}, 400, "service_code"),
        (
            "unknown jurisdiction_id",
            {**ok, "jurisdiction_id": "atlantis.gov"},
            404,
            "atlantis.gov",
        ),
        (
            "missing required attribute",
            {k: v for k, v in ok.items() if k != "attribute[position]"},
            400,
            "attribute[position] is required",
        ),
        ("not one of the values", {**ok, "attribute[position]": "sky"}, 400, "'sky'"),
        ("not a number", {**ok, "attribute[depth_cm]": "deep"}, 400, "attribute[depth_cm]"),
        ("latitude out of range", {**ok, "lat": "123"}, 400, "lat must be between"),
        ("longitude not a number", {**ok, "long": "west"}, 400, "long must be a number"),
        ("lat without long", {**ok, "long": ""}, 400, "lat and long must be given together"),
        (
            "address_string alone",
            {k: v for k, v in ok.items() if k not in ("lat", "long")} | {"address_string": "Elm"},
            400,
            "address_string alone",
        ),
        ("outside the jurisdiction", {**ok, "lat": "51.5", "long": "-0.12"}, 400, "not inside"),
        ("description too long", {**ok, "description": "x" * 4001}, 400, "4001 characters"),
        ("bad media_url", {**ok, "media_url": "javascript:alert(1)"}, 400, "media_url"),
        ("bad email", {**ok, "email": "not-an-address"}, 400, "email"),
    ]


def test_bad_posts_get_the_spec_error_and_store_nothing(
    client: TestClient, demo_db: Database, settings: Settings, api_key: str
) -> None:
    before = counts(demo_db)
    for label, fields, status, needle in _bad_posts(api_key, ward_points(demo_db)["3"]):
        for fmt in ("xml", "json"):
            descriptions = _error(_post(client, fields, fmt=fmt), status, fmt)
            assert any(needle in d for d in descriptions), f"{label}: {descriptions}"
        assert counts(demo_db) == before, f"{label}: rows were stored"
    # Media that is not an image, in a multipart POST.
    lat, lon = ward_points(demo_db)["3"]
    resp = _post(
        client,
        _pothole(api_key, lat, lon),
        files={"media": ("x.jpg", b"%PDF-1.4 not a photo", "image/jpeg")},
    )
    _error(resp, 400)
    # A JSON body is not a form.
    _error(client.post(f"{BASE}/requests.xml", json={"api_key": api_key}), 400)
    assert counts(demo_db) == before
    assert media_files(settings) == []


def test_every_mistake_is_reported_at_once(client: TestClient, api_key: str) -> None:
    resp = _post(
        client,
        {
            "api_key": api_key,
            "service_code": "missed_collection",
            "attribute[carts][]": "compost",
            "attribute[collection_day]": "last week",
        },
    )
    descriptions = _error(resp, 400)
    assert len(descriptions) == 2
    assert any("attribute[carts]" in d for d in descriptions)
    assert any("attribute[collection_day]" in d for d in descriptions)


def test_a_revoked_key_is_refused(client: TestClient, demo_db: Database, api_key: str) -> None:
    from geo311.resident.open311 import service

    lat, lon = ward_points(demo_db)["4"]
    assert _post(client, _pothole(api_key, lat, lon)).status_code == 200
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
        assert service.revoke_api_keys(s, jurisdiction_id=jid, now=datetime.now(UTC), key=api_key)
    assert "revoked" in _error(_post(client, _pothole(api_key, lat, lon)), 403)[0]


# --- GET requests ---------------------------------------------------------------------------


def test_requests_in_a_window_page_through_everything_once(
    client: TestClient, demo_db: Database
) -> None:
    expected = _db_ids(
        demo_db,
        "r.reported_at BETWEEN :s AND :e",
        s=datetime(2026, 5, 1, tzinfo=UTC),
        e=datetime(2026, 6, 1, 12, tzinfo=UTC),
    )
    assert len(expected) > 120, "the demo month should need several pages"
    seen: list[str] = []
    page = 1
    while True:
        root = _get(client, "requests", "requests", page=str(page), page_size="50", **DEMO_WINDOW)
        if len(root) == 0:
            break
        assert len(root) <= 50
        seen += _ids(root)
        page += 1
    assert seen == expected  # every request once, newest first
    json_page = _get(
        client, "requests", "requests", "json", page="2", page_size="50", **DEMO_WINDOW
    )
    assert [r["service_request_id"] for r in json_page] == expected[50:100]


def test_requests_filter_by_code_status_and_ids(client: TestClient, demo_db: Database) -> None:
    window = "r.reported_at BETWEEN :s AND :e"
    bounds = {"s": datetime(2026, 5, 1, tzinfo=UTC), "e": datetime(2026, 6, 1, 12, tzinfo=UTC)}
    codes = _get(client, "requests", "requests", service_code="pothole,graffiti", **DEMO_WINDOW)
    assert _ids(codes) == _db_ids(
        demo_db, f"{window} AND r.category_code IN ('pothole', 'graffiti')", **bounds
    )
    assert {text_of(r, "service_code") for r in codes} == {"pothole", "graffiti"}

    closed = _get(client, "requests", "requests", status="closed", **DEMO_WINDOW)
    assert _ids(closed) == _db_ids(demo_db, f"{window} AND i.status = 'closed'", **bounds)
    assert {text_of(r, "status") for r in closed} == {"closed"}
    opened = _get(client, "requests", "requests", "json", status="open", **DEMO_WINDOW)
    assert [r["service_request_id"] for r in opened] == _db_ids(
        demo_db, f"{window} AND i.status <> 'closed'", **bounds
    )
    both = _get(client, "requests", "requests", status="open,closed", **DEMO_WINDOW)
    assert len(both) == len(closed) + len(opened)

    # service_request_id overrides every other filter.
    some = _ids(closed)[:3]
    picked = _get(
        client,
        "requests",
        "requests",
        service_request_id=",".join(s.lower() for s in some),
        status="open",
        service_code="tree_down",
    )
    assert sorted(_ids(picked)) == sorted(some)


def test_the_default_window_is_the_last_90_days(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["6"]
    fresh = _posted_id(client, _pothole(api_key, lat, lon))
    now = datetime.now(UTC)
    expected = _db_ids(
        demo_db, "r.reported_at BETWEEN :s AND :e", s=now - timedelta(days=90), e=now
    )
    got = _ids(_get(client, "requests", "requests"))
    assert fresh in got
    assert got == expected
    # Empty parameters behave exactly like missing ones.
    assert (
        _ids(_get(client, "requests", "requests", service_code="", status="", end_date="")) == got
    )


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_bad_dates_and_paging_are_400(client: TestClient, fmt: str) -> None:
    cases = [
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "days"),
        ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "before"),
        ({"start_date": "2026-01-01"}, "W3C"),
        ({"end_date": "2026-01-01T00:00:00"}, "offset"),
        ({"updated_after": "yesterday"}, "updated_after"),
        ({"status": "pending"}, "open or closed"),
        ({"page": "0"}, "page"),
        ({"page_size": "100000"}, "page_size"),
    ]
    for params, needle in cases:
        for path in ("requests", "servicerequestupdates"):
            if path == "servicerequestupdates" and not {"start_date", "end_date"} & set(params):
                continue
            resp = client.get(f"{BASE}/{path}.{fmt}", params=params)
            assert any(needle in d for d in _error(resp, 400, fmt)), (path, params)


def test_dates_with_microseconds_and_an_unencoded_plus_are_accepted(client: TestClient) -> None:
    resp = client.get(
        f"{BASE}/requests.xml?start_date=2026-05-01T02:00:00.123456 02:00"
        "&end_date=2026-06-01T12:00:00.5%2B00:00"
    )
    assert resp.status_code == 200, resp.text
    assert len(check_xml("requests", resp.content)) > 0


def test_updated_after_finds_an_old_request_that_changed(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    old = _db_ids(
        demo_db, "i.status = 'new' AND r.reported_at < :s", s=datetime(2026, 5, 20, tzinfo=UTC)
    )[0]
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    assert old not in _ids(_get(client, "requests", "requests", updated_after=since))
    close_incident(
        demo_db, old, note="Filled with cold patch", media_root=settings.data_dir / "media"
    )
    resp = client.get(f"{BASE}/requests.xml", params={"updated_after": since})
    changed = check_xml("requests", resp.content)
    assert _ids(changed) == [old]
    assert text_of(changed[0], "status") == "closed"
    # The public hears the resolution in chosen words; the crew's note stays with staff.
    assert text_of(changed[0], "status_notes") == "Resolved: repaired."
    assert "cold patch" not in resp.text
    updated = datetime.fromisoformat(text_of(changed[0], "updated_datetime"))
    assert updated >= datetime.fromisoformat(since)
    # Its closure is after the window that ends where the first look began.
    assert old not in _ids(_get(client, "requests", "requests", updated_before=since))


def test_extensions_show_ward_channel_photos_notes_and_duplicates(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    name = "pothole_ward4.jpg"
    first = check_xml(
        "posted",
        _post(
            client,
            {
                "api_key": api_key,
                "service_code": "pothole",
                "attribute[depth_cm]": "4",
                "attribute[position]": "curb",
            },
            files={"media": (name, (PHOTOS / name).read_bytes(), "image/jpeg")},
        ).content,
    )
    original = text_of(first[0], "service_request_id")
    lat, lon = ward_points(demo_db)[PHOTO_WARDS[name]]
    duplicate = _posted_id(client, _pothole(api_key, lat, lon))
    join_incident(demo_db, duplicate, original)  # what dedup (issue 3) will do

    plain = _get(client, f"requests/{original}", "requests")[0]
    assert children(plain) == REQUEST_FIELDS

    root = _get(
        client,
        "requests",
        "requests",
        extensions="true",
        service_request_id=f"{original},{duplicate}",
    )
    by_id = {text_of(r, "service_request_id"): r for r in root}
    first_ext = by_id[original].find("extended_attributes")
    assert text_of(first_ext, "channel") == "open311"
    assert text_of(first_ext, "ward") == PHOTO_WARDS[name]
    assert text_of(first_ext, "duplicate") == "false"
    assert text_of(first_ext, "parent_service_request_id") == ""
    assert text_of(first_ext, "status_detail") == "assigned"
    photos = first_ext.findall("photos/photo")
    assert len(photos) == 1
    assert text_of(photos[0], "title") == "Submitted"
    assert text_of(by_id[original], "media_url") == text_of(photos[0], "media_url")
    answers = by_id[original].findall("attributes/attribute")
    assert [(text_of(a, "code"), text_of(a, "value"), text_of(a, "name")) for a in answers] == [
        ("position", "curb", "Along the curb"),
        ("depth_cm", "4", ""),
    ]
    notes = by_id[original].findall("notes/note")
    assert [(text_of(n, "type"), text_of(n, "description")) for n in notes] == [
        ("opened", "Opened"),
        ("transition", "Assigned to a crew"),
    ]

    dup_ext = by_id[duplicate].find("extended_attributes")
    assert text_of(dup_ext, "duplicate") == "true"
    assert text_of(dup_ext, "parent_service_request_id") == original
    assert dup_ext.findall("photos/photo") == []

    body = _get(client, f"requests/{duplicate}", "requests", "json", extensions="true")
    assert body[0]["extended_attributes"]["duplicate"] is True
    assert body[0]["extended_attributes"]["parent_service_request_id"] == original
    assert body[0]["notes"] == []  # it joined after the incident opened


def test_text_xml_cannot_carry_still_makes_valid_xml(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["1"]
    nasty = 'Hole\x01 <b>big</b> & ]]> "deep"'
    posted = check_xml(
        "posted", _post(client, _pothole(api_key, lat, lon, description=nasty)).content
    )
    request = _get(client, f"requests/{text_of(posted[0], 'service_request_id')}", "requests")[0]
    assert text_of(request, "description") == nasty.replace("\x01", "")


# --- the round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_round_trip_post_with_media_follow_close_and_see_the_update(
    client: TestClient, demo_db: Database, settings: Settings, api_key: str, fmt: str
) -> None:
    name = "streetlight_out_ward1.jpg"
    photo = (PHOTOS / name).read_bytes()
    resp = _post(
        client,
        {
            "api_key": api_key,
            "service_code": "streetlight_out",
            "attribute[problem]": "dark",
            "description": "Dark all night",
        },
        fmt=fmt,
        files={"media": (name, photo, "image/jpeg")},
    )
    assert resp.status_code == 200, resp.text
    if fmt == "xml":
        posted = check_xml("posted", resp.content)[0]
        srid, token = text_of(posted, "service_request_id"), text_of(posted, "token")
    else:
        body = check_json("posted", resp.content)[0]
        srid, token = body["service_request_id"], body["token"]

    def fetch(path: str, kind: str, **params: str) -> dict[str, Any]:
        got = _get(client, path, kind, fmt, **params)
        if fmt == "json":
            assert len(got) == 1
            return dict(got[0])
        assert len(got) == 1
        return {c.tag: (c.text or "") for c in got[0]}

    # By token, then by id.
    assert fetch(f"tokens/{token}", "token") == {"service_request_id": srid, "token": token}
    request = fetch(f"requests/{srid}", "requests")
    assert request["status"] == "open"
    assert request["service_code"] == "streetlight_out"
    assert request["description"] == "Dark all night"
    # Placed by the photo's GPS, in the ward the photo was taken in.
    with demo_db.session() as s:
        ward = s.execute(
            text(
                "SELECT w.code FROM reports r JOIN wards w ON w.id = r.ward_id "
                "WHERE r.tracking_id = :t"
            ),
            {"t": srid},
        ).scalar_one()
    assert ward == PHOTO_WARDS[name]
    # The photo went through the pipeline: a public JPEG without EXIF.
    media_url = str(request["media_url"])
    public = client.get(media_url.replace("http://testserver", ""))
    assert public.status_code == 200
    image = Image.open(io.BytesIO(public.content))
    assert image.format == "JPEG"
    assert not image.getexif()
    assert any("private" in p.parts for p in media_files(settings))

    closed_at = close_incident(
        demo_db,
        srid,
        note="Lamp replaced, ballast was burnt",
        resolution_code="replaced",
        media_root=settings.data_dir / "media",
    )
    request = fetch(f"requests/{srid}", "requests")
    assert request["status"] == "closed"
    assert request["status_notes"] == "Resolved: replaced."
    assert datetime.fromisoformat(str(request["updated_datetime"])) >= closed_at.replace(
        microsecond=0
    )

    updates = _get(client, "servicerequestupdates", "updates", fmt, service_request_id=srid)
    rows = [{c.tag: c.text or "" for c in u} for u in updates] if fmt == "xml" else updates
    # Every step of the lifecycle is an update; the closing ones carry the resolution's
    # public wording, never the crew's note.
    assert [(u["status"], u["description"], u["external_status_code"]) for u in rows] == [
        ("open", "Opened", "new"),
        ("open", "Assigned to a crew", "assigned"),
        ("closed", "Resolved: replaced.", "completed"),
        ("closed", "Resolved: replaced.", "closed"),
    ]
    assert not any("ballast" in str(value) for u in rows for value in dict(u).values())
    assert all(u["service_request_id"] == srid for u in rows)
    assert len({u["update_id"] for u in rows}) == 4
    everything = _get(client, "servicerequestupdates", "updates", fmt)
    assert len(everything) >= 2


def test_updates_of_an_incident_reach_every_request_that_joined_it(
    client: TestClient, demo_db: Database, api_key: str, settings: Settings
) -> None:
    lat, lon = ward_points(demo_db)["2"]
    first = _posted_id(client, _pothole(api_key, lat, lon))
    second = _posted_id(client, _pothole(api_key, lat, lon))
    join_incident(demo_db, second, first)
    close_incident(demo_db, first, note="Patched", media_root=settings.data_dir / "media")
    root = _get(client, "servicerequestupdates", "updates", service_request_id=f"{first},{second}")
    pairs = [(text_of(u, "service_request_id"), text_of(u, "status")) for u in root]
    assert (first, "open") in pairs
    assert (first, "closed") in pairs
    assert (second, "closed") in pairs
    # The second joined after the opening: it hears of the status changes that came after,
    # not of the opening, and joining is no status change of its own.
    opened = [
        text_of(u, "service_request_id")
        for u in root
        if text_of(u, "external_status_code") == "new"
    ]
    assert first in opened
    assert second not in opened
    request = _get(client, f"requests/{second}", "requests")[0]
    assert text_of(request, "status") == "closed"
