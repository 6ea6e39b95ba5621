"""Outside Open311 clients, each in the shape it really sends, against the app on the demo
city: chicagorequests' updated-date mode (RFC 3339 dates with a space), FixMyStreet's
``photo1``… upload fields and its ``POST servicerequestupdates`` (its own extension), a body
in ISO-8859-1 that says so, and an ``account_id``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import requests
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.media.uploads import process_upload
from geo311.kernel.settings import Settings
from tests.geo311.open311_helpers import (
    BASE,
    PHOTOS,
    api_key,
    client,
    close_incident,
    counts,
    settings,
    ward_points,
)
from tests.geo311.open311_shapes import check_json, check_xml, text_of

__all__ = ["api_key", "client", "settings"]  # fixtures used by name below

CHICAGO = timezone(timedelta(hours=-6))
LATIN1_FORM = "application/x-www-form-urlencoded; charset=ISO-8859-1"


def _pothole(key: str, db: Database, ward: str = "3", **extra: str) -> dict[str, str]:
    lat, lon = ward_points(db)[ward]
    return {
        "api_key": key,
        "jurisdiction_id": "demo",
        "service_code": "pothole",
        "lat": str(lat),
        "long": str(lon),
        "attribute[position]": "lane",
        **extra,
    }


def _posted_id(resp: Any) -> str:
    assert resp.status_code == 200, resp.text
    return text_of(check_xml("posted", resp.content)[0], "service_request_id")


def _as_requests_sends_it(path: str, params: dict[str, str]) -> str:
    """Return path?query encoded exactly as the ``requests`` library encodes it (a space
    becomes '+'), which is what chicagorequests uses."""
    url = requests.Request("GET", f"http://testserver{path}", params=params).prepare().url
    assert url is not None
    return url.removeprefix("http://testserver")


def _comments(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(text("SELECT count(*) FROM audit_events WHERE action = 'comment'")))


# --- chicagorequests ------------------------------------------------------------------------


def test_chicagorequests_updated_date_mode_accepts_a_space_between_date_and_time(
    client: TestClient, demo_db: Database, settings: Settings, api_key: str
) -> None:
    srid = _posted_id(client.post(f"{BASE}/requests.xml", data=_pothole(api_key, demo_db)))
    close_incident(demo_db, srid, note="done", media_root=settings.data_dir / "media")
    since = (datetime.now(UTC) - timedelta(hours=1)).astimezone(CHICAGO)
    until = since + timedelta(days=1)
    # "2026-12-03 00:00:00-06:00": RFC 3339 with a space, as the client writes it.
    after, before = (t.isoformat(sep=" ", timespec="seconds") for t in (since, until))
    assert " " in after
    for query in (
        {"updated_after": after, "updated_before": before, "page": "1"},
        {"start_date": after, "end_date": before, "page": "1"},
    ):
        resp = client.get(_as_requests_sends_it(f"{BASE}/requests.json", query))
        assert resp.status_code == 200, resp.text
        assert srid in [r["service_request_id"] for r in check_json("requests", resp.content)]
    updates = client.get(
        _as_requests_sends_it(
            f"{BASE}/servicerequestupdates.xml", {"start_date": after, "end_date": before}
        )
    )
    assert updates.status_code == 200, updates.text
    assert srid in [text_of(u, "service_request_id") for u in check_xml("updates", updates.content)]


# --- FixMyStreet: photo1 … photoN on POST requests -------------------------------------------


def test_fixmystreet_photo_fields_become_the_requests_photos_in_their_order(
    client: TestClient, demo_db: Database, settings: Settings, api_key: str
) -> None:
    names = ["sidewalk_damage_ward5_orientation6.jpg", "pothole_ward4.jpg"]
    files = {
        f"photo{n}": (name, (PHOTOS / name).read_bytes(), "image/jpeg")
        for n, name in enumerate(names, start=1)
    }
    fields = _pothole(
        api_key,
        demo_db,
        first_name="Sam",
        last_name="Smith",
        email="sam@example.org",
        description="title: Hole\n\ndetail: Deep hole\n\nSubmitted via FixMyStreet",
    )
    # Sent in reverse to show the number, not the order of the parts, decides.
    before = counts(demo_db)
    srid = _posted_id(
        client.post(f"{BASE}/requests.xml", data=fields, files=dict(reversed(files.items())))
    )
    assert counts(demo_db)["photos"] == before["photos"] + 2
    request = client.get(f"{BASE}/requests/{srid}.json", params={"extensions": "true"}).json()[0]
    photos = request["extended_attributes"]["photos"]
    expected = [process_upload((PHOTOS / n).read_bytes(), settings.media) for n in names]
    assert [(p["width"], p["height"]) for p in photos] == [(e.width, e.height) for e in expected]
    assert request["media_url"] == photos[0]["media_url"]
    for photo in photos:
        served = client.get(photo["media_url"].removeprefix("http://testserver"))
        assert served.headers["content-type"] == "image/jpeg"


def test_a_bad_second_photo_is_refused_and_nothing_is_stored(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    name = "pothole_ward4.jpg"
    before = counts(demo_db)
    resp = client.post(
        f"{BASE}/requests.xml",
        data=_pothole(api_key, demo_db),
        files={
            "photo1": (name, (PHOTOS / name).read_bytes(), "image/jpeg"),
            "photo2": ("notes.jpg", b"not a picture at all", "image/jpeg"),
        },
    )
    assert resp.status_code == 400, resp.text
    errors = check_xml("errors", resp.content)
    assert any("photo2" in text_of(e, "description") for e in errors)
    assert counts(demo_db) == before


def test_a_photo_sent_as_text_is_refused_not_dropped(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    before = counts(demo_db)
    for field in ("media", "photo1"):
        resp = client.post(
            f"{BASE}/requests.json",
            data={**_pothole(api_key, demo_db), field: "/sdcard/DCIM/pothole.jpg"},
        )
        assert resp.status_code == 400, resp.text
        errors = check_json("errors", resp.content)
        assert any(field in e["description"] for e in errors)
    assert counts(demo_db) == before


# --- a declared charset -----------------------------------------------------------------------


def test_a_body_declared_iso_8859_1_is_read_in_that_charset(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    words = "Café crème spilt, ½ m wide"
    fields = _pothole(api_key, demo_db, description=words)
    escaped = urlencode(fields, encoding="iso-8859-1").encode("ascii")  # Caf%E9 …
    raw = "&".join(f"{k}={v}" for k, v in fields.items()).encode("iso-8859-1")  # bare bytes
    for body in (escaped, raw):
        srid = _posted_id(
            client.post(f"{BASE}/requests.xml", content=body, headers={"content-type": LATIN1_FORM})
        )
        request = client.get(f"{BASE}/requests/{srid}.json").json()[0]
        assert request["description"] == words

    # The same bytes without the charset are not UTF-8: a clear error, nothing stored.
    before = counts(demo_db)
    refused = client.post(
        f"{BASE}/requests.xml",
        content=escaped,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 400
    assert "charset" in text_of(check_xml("errors", refused.content)[0], "description")
    assert counts(demo_db) == before
    unknown = client.post(
        f"{BASE}/requests.xml",
        content=escaped,
        headers={"content-type": "application/x-www-form-urlencoded; charset=klingon"},
    )
    assert unknown.status_code == 400
    assert counts(demo_db) == before


# --- account_id -------------------------------------------------------------------------------


def test_account_id_is_answered_back_and_not_kept(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    resp = client.post(
        f"{BASE}/requests.json", data=_pothole(api_key, demo_db, account_id="fms-user-4242")
    )
    assert resp.status_code == 200, resp.text
    posted = check_json("posted", resp.content)[0]
    assert posted["account_id"] == "fms-user-4242"
    srid = posted["service_request_id"]
    for fmt in ("xml", "json"):
        again = client.get(f"{BASE}/requests/{srid}.{fmt}", params={"extensions": "true"})
        assert "fms-user-4242" not in again.text
    with demo_db.session() as s:
        kept = s.scalar(
            text(
                "SELECT count(*) FROM reports r LEFT JOIN requesters q "
                "ON q.jurisdiction_id = r.jurisdiction_id AND q.id = r.requester_id "
                "LEFT JOIN open311_submissions o "
                "ON o.jurisdiction_id = r.jurisdiction_id AND o.report_id = r.id "
                "WHERE r.tracking_id = :t AND (row(r.*)::text LIKE '%4242%' "
                "OR row(q.*)::text LIKE '%4242%' OR row(o.*)::text LIKE '%4242%')"
            ),
            {"t": srid},
        )
    assert kept == 0


# --- FixMyStreet: POST servicerequestupdates ---------------------------------------------------


def _fms_update(key: str, srid: str, **extra: str) -> dict[str, str]:
    """The fields FixMyStreet's Open311 client posts for a comment on a report."""
    return {
        "jurisdiction_id": "demo",
        "api_key": key,
        "updated_datetime": "2026-12-03T09:15:00+00:00",
        "service_request_id": srid,
        "status": "OPEN",
        "description": "Still there, and deeper after the rain",
        "first_name": "Sam",
        "last_name": "Smith",
        "email": "sam@example.org",
        "update_id": "9001",
        "media_url": "https://fms.example.org/photo/c/9001.0.full.jpeg",
        **extra,
    }


def _feed(client: TestClient, srid: str) -> list[dict[str, str]]:
    resp = client.get(f"{BASE}/servicerequestupdates.xml", params={"service_request_id": srid})
    assert resp.status_code == 200, resp.text
    return [{c.tag: c.text or "" for c in u} for u in check_xml("updates", resp.content)]


def test_fixmystreet_posts_a_comment_and_reads_it_back_in_the_update_feed(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    srid = _posted_id(client.post(f"{BASE}/requests.xml", data=_pothole(api_key, demo_db)))
    resp = client.post(f"{BASE}/servicerequestupdates.xml", data=_fms_update(api_key, srid))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/xml; charset=utf-8"
    update_id = text_of(check_xml("posted_update", resp.content)[0], "update_id")

    feed = _feed(client, srid)
    mine = [u for u in feed if u["update_id"] == update_id]
    assert len(mine) == 1
    assert mine[0]["description"] == "Still there, and deeper after the rain"
    assert mine[0]["status"] == "open"
    # The remote photo is not fetched, nor shown; the commenter's details are not kept.
    assert mine[0]["media_url"] == ""
    public = client.get(f"{BASE}/requests/{srid}.xml", params={"extensions": "true"}).text
    for private in ("Smith", "sam@example.org", "fms.example.org"):
        assert private not in str(feed) + public
    assert "Still there, and deeper after the rain" in public  # one of the request's notes

    # FixMyStreet retries a comment it could not confirm: the same answer, no second comment.
    comments = _comments(demo_db)
    retry = client.post(f"{BASE}/servicerequestupdates.json", data=_fms_update(api_key, srid))
    assert retry.status_code == 200, retry.text
    assert check_json("posted_update", retry.content) == [{"update_id": update_id}]
    assert _comments(demo_db) == comments


def test_fixmystreet_reopen_reopens_a_closed_request_and_other_statuses_change_nothing(
    client: TestClient, demo_db: Database, settings: Settings, api_key: str
) -> None:
    srid = _posted_id(client.post(f"{BASE}/requests.xml", data=_pothole(api_key, demo_db)))
    close_incident(demo_db, srid, note="done", media_root=settings.data_dir / "media")
    for n, status in enumerate(("CLOSED", "OPEN", "FIXED")):
        fields = _fms_update(api_key, srid, status=status, update_id=f"s{n}", description="Hm")
        assert client.post(f"{BASE}/servicerequestupdates.xml", data=fields).status_code == 200
        assert client.get(f"{BASE}/requests/{srid}.json").json()[0]["status"] == "closed"
    fields = _fms_update(api_key, srid, status="REOPEN", update_id="r1", description="Not fixed")
    assert client.post(f"{BASE}/servicerequestupdates.xml", data=fields).status_code == 200
    request = client.get(f"{BASE}/requests/{srid}.json").json()[0]
    assert request["status"] == "open"
    assert request["status_notes"] == "Reopened: a resident reported that the problem is not fixed."
    assert [(u["external_status_code"], u["description"]) for u in _feed(client, srid)][-2:] == [
        ("reopened", "Reopened: a resident reported that the problem is not fixed."),
        ("reopened", "Not fixed"),
    ]


def test_a_comment_photo_is_read_from_an_upload_field(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    srid = _posted_id(client.post(f"{BASE}/requests.xml", data=_pothole(api_key, demo_db)))
    name = "graffiti_ward3.jpg"
    fields = _fms_update(api_key, srid, description="Photo of it today")
    del fields["media_url"]
    resp = client.post(
        f"{BASE}/servicerequestupdates.xml",
        data=fields,
        files={"photo1": (name, (PHOTOS / name).read_bytes(), "image/jpeg")},
    )
    assert resp.status_code == 200, resp.text
    update_id = text_of(check_xml("posted_update", resp.content)[0], "update_id")
    mine = next(u for u in _feed(client, srid) if u["update_id"] == update_id)
    assert mine["media_url"].startswith("http://testserver/media/public/")
    served = client.get(mine["media_url"].removeprefix("http://testserver"))
    assert served.headers["content-type"] == "image/jpeg"
    # A photo alone is a comment too, in chosen words.
    del fields["description"]
    fields["update_id"] = "9002"
    only_photo = client.post(
        f"{BASE}/servicerequestupdates.xml",
        data=fields,
        files={"media": (name, (PHOTOS / name).read_bytes(), "image/jpeg")},
    )
    assert only_photo.status_code == 200, only_photo.text
    assert _feed(client, srid)[-1]["description"] == "A resident added a photo."


def test_a_latin1_comment_is_read_in_its_declared_charset(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    srid = _posted_id(client.post(f"{BASE}/requests.xml", data=_pothole(api_key, demo_db)))
    fields = _fms_update(api_key, srid, description="Encore là, après la pluie")
    resp = client.post(
        f"{BASE}/servicerequestupdates.xml",
        content=urlencode(fields, encoding="iso-8859-1").encode("ascii"),
        headers={"content-type": LATIN1_FORM},
    )
    assert resp.status_code == 200, resp.text
    assert _feed(client, srid)[-1]["description"] == "Encore là, après la pluie"


def test_a_bad_comment_is_refused_in_open311_terms_and_stores_nothing(
    client: TestClient, demo_db: Database, api_key: str
) -> None:
    srid = _posted_id(client.post(f"{BASE}/requests.xml", data=_pothole(api_key, demo_db)))
    before, comments = counts(demo_db), _comments(demo_db)
    name = "pothole_ward4.jpg"
    photo = (name, (PHOTOS / name).read_bytes(), "image/jpeg")
    cases: list[tuple[dict[str, str], dict[str, Any] | None, int, str]] = [
        (_fms_update("o311_wrong", srid), None, 403, "api_key"),
        (_fms_update(api_key, "NOPE-123"), None, 404, "NOPE-123"),
        (_fms_update(api_key, srid, description=""), None, 400, "description"),
        (_fms_update(api_key, srid, description="x" * 4001), None, 400, "4000"),
        (_fms_update(api_key, srid, updated_datetime="yesterday"), None, 400, "updated_datetime"),
        (_fms_update(api_key, srid), {"photo1": photo, "photo2": photo}, 400, "one photo"),
        (_fms_update(api_key, srid), {"media": ("x.jpg", b"nope", "image/jpeg")}, 400, "media"),
    ]
    for fields, files, status, needle in cases:
        resp = client.post(f"{BASE}/servicerequestupdates.xml", data=fields, files=files)
        assert resp.status_code == status, (needle, resp.text)
        errors = check_xml("errors", resp.content)
        assert any(needle in text_of(e, "description") for e in errors), (needle, resp.text)
    assert counts(demo_db) == before
    assert _comments(demo_db) == comments
