"""Seven inputs that once answered 500 now get a clear 4xx naming what is wrong, and store
nothing; one test per cause. Problem+json on the API, Open311's own error shape on Open311."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from dispatch.cli import CrewFile
from dispatch.planning import sla_priority
from geo311.kernel.database import Database
from geo311.kernel.fields import BIGINT_MAX
from geo311.kernel.settings import Settings
from tests.geo311.open311_helpers import (
    api_key,
    client,
    counts,
    media_files,
    settings,
    ward_points,
)
from tests.support import jpeg, staff_token

__all__ = ["api_key", "client", "settings"]  # fixtures used by name below

PROBLEM = "application/problem+json"
CREW_TABLES = ("crews", "crew_skills", "crew_territories", "crew_breaks", "crew_members")


def _auth(db: Database, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(db, role)}"}


def _fields(response: object) -> list[str]:
    body = response.json()  # type: ignore[attr-defined]
    return [e["field"] for e in body.get("errors", [])]


def _problem(response: object, status: int, field: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    assert field in _fields(response), response.text  # type: ignore[attr-defined]


def _open311_error(response: object, status: int, mentions: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    if response.headers["content-type"].startswith("application/json"):  # type: ignore[attr-defined]
        errors = response.json()  # type: ignore[attr-defined]
        assert errors
        assert all(e["code"] == status for e in errors)
        assert any(mentions in e["description"] for e in errors), errors
    else:
        assert response.text.startswith("<?xml")  # type: ignore[attr-defined]
        assert "<errors>" in response.text  # type: ignore[attr-defined]
        assert mentions in response.text  # type: ignore[attr-defined]


def _crew_counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in CREW_TABLES}


def _crew(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "code": "arbor-2",
        "name": "Second arborist crew",
        "depot": {"lon": -93.23, "lat": 44.96, "name": "Forestry Yard"},
        "shift_start": "06:30",
        "shift_end": "15:00",
        "skills": ["arborist"],
        "territory": ["1"],
        "breaks": [{"earliest_start": "10:30", "latest_start": "11:30", "duration_s": 1800}],
    }
    body.update(over)
    return body


# --- 1. NUL characters ----------------------------------------------------------------------


def test_a_nul_character_anywhere_is_refused_naming_the_field_and_nothing_is_stored(
    client: TestClient, demo_db: Database, settings: Settings, api_key: str
) -> None:
    lat, lon = ward_points(demo_db)["4"]
    before, files = counts(demo_db), media_files(settings)
    # In the path, the query string, an urlencoded form, a multipart text field, JSON.
    _problem(client.get("/api/v1/reports/GEO-%00"), 422, "path")
    _problem(client.get("/api/v1/categories?lang=en%00"), 422, "lang")
    form = {"category": "pothole", "lat": str(lat), "lon": str(lon), "description": "deep\x00"}
    _problem(client.post("/api/v1/reports", data=form), 422, "description")
    _problem(
        client.post(
            "/api/v1/reports",
            data=form,
            files={"photo": ("p.jpg", jpeg(), "image/jpeg")},
        ),
        422,
        "description",
    )
    _problem(
        client.post("/api/v1/reports", json={**form, "description": "a\x00b"}), 422, "description"
    )
    crew = _crew(members=[{"name": "J.\x00Okafor"}])
    _problem(
        client.post("/api/v1/crews", json=crew, headers=_auth(demo_db, "admin")),
        422,
        "members[0].name",
    )
    # Open311 answers in its own shape, in the format the path names.
    _open311_error(client.get("/open311/v2/requests.json?service_code=pot%00hole"), 400, "NUL")
    post = {
        "api_key": api_key,
        "service_code": "pothole",
        "lat": str(lat),
        "long": str(lon),
        "description": "a hole\x00",
    }
    _open311_error(client.post("/open311/v2/requests.json", data=post), 400, "description")
    _open311_error(
        client.post(
            "/open311/v2/requests.xml",
            data=post,
            files={"media": ("p.jpg", jpeg(), "image/jpeg")},
        ),
        400,
        "description",
    )
    assert counts(demo_db) == before
    assert media_files(settings) == files
    # A photo is binary and full of zero bytes: it still goes through with its text fields.
    ok = client.post(
        "/api/v1/reports",
        data={**form, "description": "deep"},
        files={"photo": ("p.jpg", jpeg(), "image/jpeg")},
    )
    assert ok.status_code == 201, ok.text


# --- 2. integers beyond bigint ----------------------------------------------------------------


def test_ids_pages_and_offsets_beyond_bigint_are_refused(
    client: TestClient, demo_db: Database
) -> None:
    staff = _auth(demo_db, "dispatcher")
    huge = BIGINT_MAX + 1
    _problem(client.get(f"/api/v1/work-orders/{huge}", headers=staff), 422, "work_order_id")
    _problem(client.get(f"/api/v1/incidents/{huge}", headers=staff), 422, "incident_id")
    _problem(client.get(f"/api/v1/work-orders?offset={huge}", headers=staff), 422, "offset")
    _problem(client.get(f"/api/v1/dispatch/queue?offset={huge}", headers=staff), 422, "offset")
    _problem(
        client.post(
            "/api/v1/staff/incidents/1/merge",
            json={"source_incident_id": huge, "reason": "same hole"},
            headers=staff,
        ),
        422,
        "source_incident_id",
    )
    _open311_error(client.get(f"/open311/v2/requests.json?page={huge}"), 400, "page")
    _open311_error(client.get("/open311/v2/requests.json?page=%C2%B2"), 400, "page")  # "²"
    # The largest bigint itself is a well-formed id that names nothing.
    assert client.get(f"/api/v1/work-orders/{BIGINT_MAX}", headers=staff).status_code == 404


# --- 3. dates beyond what PostgreSQL or Python hold ---------------------------------------


def test_dates_beyond_what_the_database_can_hold_are_refused(
    client: TestClient, demo_db: Database
) -> None:
    for query, field in (
        ("start_date=9999-12-31T23:00:00-05:00", "start_date"),
        ("end_date=0001-01-01T00:00:00Z", "end_date"),
        ("updated_after=9999-12-31T23:59:59-12:00", "updated_after"),
    ):
        _open311_error(client.get(f"/open311/v2/requests.json?{query}"), 400, field)
    _open311_error(
        client.get("/open311/v2/servicerequestupdates.xml?end_date=0001-01-01T00:00:00%2B05:00"),
        400,
        "end_date",
    )
    dispatcher = _auth(demo_db, "dispatcher")
    _problem(client.post("/api/v1/plans?date=9999-12-31", headers=dispatcher), 422, "date")
    _problem(client.get("/api/v1/plans/0001-01-01", headers=dispatcher), 422, "day")
    with demo_db.session() as s:
        work_order = s.execute(text("SELECT min(id) FROM work_orders")).scalar_one()
    _problem(
        client.put(
            f"/api/v1/dispatch/work-orders/{work_order}/appointment",
            json={"start": "9999-12-31T23:00:00-05:00", "end": "9999-12-31T23:30:00-05:00"},
            headers=dispatcher,
        ),
        422,
        "start",
    )


# --- 4. deeply nested JSON ------------------------------------------------------------------


def test_json_nested_without_end_is_refused(client: TestClient, demo_db: Database) -> None:
    admin = {**_auth(demo_db, "admin"), "Content-Type": "application/json"}
    before = _crew_counts(demo_db)
    bottomless = "[" * 200_000 + "]" * 200_000  # once a RecursionError: 500
    _problem(client.post("/api/v1/crews", content=bottomless, headers=admin), 422, "body")
    deep: object = "x"
    for _ in range(40):
        deep = {"a": deep}
    _problem(
        client.post("/api/v1/crews", content=json.dumps(_crew(name=deep)), headers=admin),
        422,
        "body",
    )
    _problem(client.post("/api/v1/reports", content=bottomless, headers=admin), 422, "body")
    assert _crew_counts(demo_db) == before


# --- 5. crew codes that cannot be a path segment or a header --------------------------------


@pytest.mark.parametrize(
    "code", ["крю-1", "crew\n1", "north/east", "two words", "-lead", "x" * 41, "tab\tcrew"]
)
def test_a_crew_code_that_cannot_be_a_url_or_header_is_refused_and_nothing_is_stored(
    client: TestClient, demo_db: Database, code: str
) -> None:
    admin = _auth(demo_db, "admin")
    before = _crew_counts(demo_db)
    _problem(client.post("/api/v1/crews", json=_crew(code=code), headers=admin), 422, "code")
    assert _crew_counts(demo_db) == before
    # The crews load file follows the same rule.
    with pytest.raises(ValueError, match="code"):
        CrewFile.model_validate({"crews": [_crew(code=code)]})
    created = client.post("/api/v1/crews", json=_crew(code="arbor_2.b-1"), headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/api/v1/crews/arbor_2.b-1"
    assert client.get("/api/v1/crews/arbor_2.b-1", headers=admin).json()["code"] == "arbor_2.b-1"


# --- 6. shifts with a UTC offset ------------------------------------------------------------


def test_crew_shifts_and_access_hours_with_a_utc_offset_are_refused(
    client: TestClient, demo_db: Database
) -> None:
    admin = _auth(demo_db, "admin")
    before = _crew_counts(demo_db)
    for field, body in (
        ("shift_start", _crew(shift_start="06:30:00+05:17")),
        ("shift_end", _crew(shift_end="15:00:00-00:30")),
        (
            "breaks[0].earliest_start",
            _crew(breaks=[{"earliest_start": "10:30Z", "latest_start": "11:30", "duration_s": 60}]),
        ),
    ):
        response = client.post("/api/v1/crews", json=body, headers=admin)
        assert response.status_code == 422, response.text
        assert any(f.startswith(field.split("[")[0]) for f in _fields(response)), response.text
    assert _crew_counts(demo_db) == before
    response = client.put(
        "/api/v1/dispatch/service-times/pothole",
        json={"service_s": 600, "access_start": "09:00+01:00", "access_end": "15:00+01:00"},
        headers=admin,
    )
    _problem(response, 422, "access_start")


# --- 7. a day plan long before the work is due ----------------------------------------------


def test_sla_priority_of_work_due_decades_after_the_day_is_the_lowest_not_an_overflow() -> None:
    day = datetime(1990, 1, 2, tzinfo=UTC)
    due = datetime(2026, 6, 1, tzinfo=UTC)
    assert sla_priority(due, day_start=day, day_end=day + timedelta(days=1)) == 6
    assert sla_priority(day + timedelta(hours=30), day_start=day, day_end=day + timedelta(days=1))


def test_a_day_plan_years_before_the_scheduled_work_is_due_is_made(
    client: TestClient, demo_db: Database
) -> None:
    dispatcher = _auth(demo_db, "dispatcher")
    # Scheduled work joins every plan, whatever its due date: schedule a job due in 2026.
    with demo_db.session() as s:
        s.execute(
            text(
                "UPDATE work_orders SET status = 'scheduled' WHERE id = "
                "(SELECT min(id) FROM work_orders WHERE status IN ('new', 'assigned'))"
            )
        )
        s.commit()
    day = date(2001, 1, 2)  # a Tuesday: the demo crews work
    response = client.post(f"/api/v1/plans?date={day}", headers=dispatcher)
    assert response.status_code in (200, 201), response.text
    plan = response.json()
    assert plan["day"] == day.isoformat()
    planned = [s["work_order_id"] for r in plan["routes"] for s in r["stops"]]
    left = [w["work_order_id"] for w in plan["left_out"]]
    assert planned or left  # the scheduled job is on a route or said to be left out
