"""New work to a crew by the rules, or into the dispatcher's queue: through the API, on the
demo city in a real PostGIS.

The demo's four crews cover every ward and work Monday to Friday; the tests reshape them
through the crew API the way an admin would. Only categories whose SLA spans at least three
days are reported, so every test holds whatever day of the week it runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from dispatch import assignment
from dispatch import service as dispatch_service
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from layers import service as layers_service
from tests.dispatch.test_cli import cli, run
from tests.support import pooled_app, staff_token
from work_orders import categories as category_service
from work_orders import incidents, lookups

__all__ = ["cli"]  # a fixture, used by name


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, jurisdiction="demo")
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


@pytest.fixture
def headers(demo_db: Database) -> dict[str, dict[str, str]]:
    return {
        role: {"Authorization": f"Bearer {staff_token(demo_db, role)}"}
        for role in ("admin", "dispatcher", "planner", "crew")
    }


def _point(db: Database, ward: str, step: int = 0) -> tuple[float, float]:
    """Return (lat, lon) inside ``ward``, ``step`` × ~110 m north of a point well inside it,
    so reports at different steps are never folded together as duplicates."""
    with db.session() as s:
        lon, lat = s.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM wards "
                "WHERE code = :code) w"
            ),
            {"code": ward},
        ).one()
        lat += 0.001 * step
        inside = s.execute(
            text(
                "SELECT ST_Contains(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
                "FROM wards WHERE code = :code"
            ),
            {"code": ward, "lon": lon, "lat": lat},
        ).scalar_one()
    assert inside, f"step {step} left ward {ward}"
    return lat, lon


def _report(
    client: TestClient, db: Database, category: str, ward: str, step: int = 0
) -> dict[str, Any]:
    lat, lon = _point(db, ward, step)
    resp = client.post(
        "/api/v1/reports", data={"category": category, "lat": str(lat), "lon": str(lon)}
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    assert body["report_count"] == 1, "the report joined an existing incident"
    assert body["ward"]["code"] == ward
    return body


def _work_order(client: TestClient, tracking_id: str, auth: dict[str, str]) -> dict[str, Any]:
    staff = client.get(f"/api/v1/staff/reports/{tracking_id}", headers=auth)
    assert staff.status_code == 200, staff.text
    incident = client.get(f"/api/v1/incidents/{staff.json()['incident_id']}", headers=auth)
    assert incident.status_code == 200, incident.text
    work_order: dict[str, Any] = incident.json()["work_order"]
    return work_order


def _crews(client: TestClient, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {c["code"]: c for c in client.get("/api/v1/crews", headers=auth).json()}


def _put_crew(client: TestClient, auth: dict[str, str], code: str, **changes: Any) -> None:
    crew = _crews(client, auth)[code]
    body = {k: v for k, v in crew.items() if k not in ("id", "version", "updated_at")}
    body.update(changes)
    resp = client.put(
        f"/api/v1/crews/{code}", json=body, headers={**auth, "If-Match": f'"{crew["version"]}"'}
    )
    assert resp.status_code == 200, resp.text


def _new_crew(client: TestClient, auth: dict[str, str], like: str, code: str, **over: Any) -> int:
    body = {k: v for k, v in _crews(client, auth)[like].items()}
    for k in ("id", "version", "updated_at"):
        body.pop(k)
    body.update(code=code, name=f"{code} crew", **over)
    resp = client.post("/api/v1/crews", json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _queue(client: TestClient, auth: dict[str, str]) -> dict[int, dict[str, Any]]:
    resp = client.get("/api/v1/dispatch/queue", headers=auth)
    assert resp.status_code == 200, resp.text
    return {row["work_order_id"]: row for row in resp.json()}


def _events(db: Database, work_order_id: int) -> list[Any]:
    with db.session() as s:
        return list(
            s.execute(
                text(
                    "SELECT action, actor, to_state, reason, data FROM audit_events "
                    "WHERE entity = 'work_order' AND entity_id = :id ORDER BY id"
                ),
                {"id": work_order_id},
            ).all()
        )


# --- a new report gets a crew ---------------------------------------------------------------


def test_a_pothole_goes_to_the_paving_crew_that_covers_its_ward(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin, dispatcher = headers["admin"], headers["dispatcher"]
    _put_crew(client, admin, "streets", territory=["1", "2", "3"])
    south = _new_crew(client, admin, "streets", "streets-south", territory=["4", "5", "6"])
    north = _crews(client, admin)["streets"]["id"]

    in_five = _report(client, demo_db, "pothole", "5")
    in_two = _report(client, demo_db, "pothole", "2")
    # The resident sees the work is with a crew; the crew is staff business.
    assert in_five["status"] == "assigned"
    public = client.get(f"/api/v1/reports/{in_five['tracking_id']}")
    assert public.json()["status"] == "assigned"
    assert "streets" not in public.text

    south_job = _work_order(client, in_five["tracking_id"], dispatcher)
    north_job = _work_order(client, in_two["tracking_id"], dispatcher)
    assert (south_job["status"], south_job["crew_id"]) == ("assigned", south)
    assert (north_job["status"], north_job["crew_id"]) == ("assigned", north)

    events = _events(demo_db, south_job["id"])
    assert [e.action for e in events] == ["opened", "transition", "crew_assigned"]
    change, why = events[1], events[2]
    assert (change.actor, change.to_state, change.reason) == ("dispatch:rules", "assigned", None)
    assert why.to_state is None
    assert why.data["crew"] == "streets-south"
    assert why.data["candidates"] == ["streets-south"]
    assert why.data["skills"] == ["paving"]
    assert "the only eligible crew" in why.data["detail"]
    assert south_job["id"] not in _queue(client, dispatcher)


def test_a_streetlight_report_goes_to_the_electrical_crew_by_its_asset_type(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin, dispatcher = headers["admin"], headers["dispatcher"]
    # The rule names the asset type, not the category: the snapped streetlight decides.
    rules = client.get("/api/v1/dispatch/skill-rules", headers=admin).json()
    rules = [r for r in rules if r["category_code"] != "streetlight_out"]
    rules.append({"asset_type": "streetlight", "skill_code": "electrical"})
    assert client.put("/api/v1/dispatch/skill-rules", json=rules, headers=admin).status_code == 200
    with demo_db.session() as s:
        lon, lat = s.execute(
            text(
                "SELECT ST_X(a.geom), ST_Y(a.geom) FROM assets a JOIN wards w "
                "ON w.jurisdiction_id = a.jurisdiction_id AND ST_Contains(w.geom, a.geom) "
                "WHERE a.asset_type = 'streetlight' "
                "AND w.code = '4' ORDER BY a.id LIMIT 1"
            )
        ).one()
    resp = client.post(
        "/api/v1/reports",
        data={"category": "streetlight_out", "lat": str(lat), "lon": str(lon)},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["asset"] is not None
    job = _work_order(client, resp.json()["tracking_id"], dispatcher)
    assert job["status"] == "assigned"
    assert job["crew_id"] == _crews(client, admin)["lighting"]["id"]
    assert _events(demo_db, job["id"])[-1].data["skills"] == ["electrical"]


def test_of_two_eligible_crews_the_less_loaded_one_gets_the_job(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin, dispatcher = headers["admin"], headers["dispatcher"]
    spare = _new_crew(client, admin, "streets", "streets-2")
    streets = _crews(client, admin)["streets"]["id"]

    # Equal load (none): the tie goes to the lower code, and both were eligible.
    first = _work_order(client, _report(client, demo_db, "pothole", "3")["tracking_id"], dispatcher)
    assert first["crew_id"] == streets
    assert _events(demo_db, first["id"])[-1].data["candidates"] == ["streets", "streets-2"]
    # Now streets has a job due before this one: the next goes to the idle crew.
    second = _work_order(
        client, _report(client, demo_db, "pothole", "3", step=2)["tracking_id"], dispatcher
    )
    assert second["crew_id"] == spare
    assert "least loaded of 2" in _events(demo_db, second["id"])[-1].data["detail"]

    # Load streets-2 with three more hours of paving due tomorrow, and give streets' job a due
    # date after the next one's: work due later does not compete, so streets is the idle one.
    with demo_db.session() as s:
        s.execute(
            text("UPDATE work_orders SET due_at = now() + interval '30 days' WHERE id = :id"),
            {"id": first["id"]},
        )
        busy = s.execute(
            text(
                "UPDATE work_orders SET crew_id = :crew, status = 'assigned', "
                "due_at = now() + interval '1 day' WHERE id IN (SELECT w.id FROM work_orders w "
                "JOIN incidents i ON i.id = w.incident_id WHERE w.crew_id IS NULL "
                "AND w.status = 'new' AND i.category_code = 'pothole' ORDER BY w.id LIMIT 3) "
                "RETURNING id"
            ),
            {"crew": spare},
        ).all()
        assert len(busy) == 3
    third = _work_order(
        client, _report(client, demo_db, "pothole", "3", step=4)["tracking_id"], dispatcher
    )
    assert third["crew_id"] == streets
    assert _events(demo_db, third["id"])[-1].data["candidates"] == ["streets", "streets-2"]
    # Held work keeps nobody busy.
    with demo_db.session() as s:
        s.execute(
            text("UPDATE work_orders SET status = 'on_hold' WHERE crew_id = :crew"),
            {"crew": spare},
        )
    fourth = _work_order(
        client, _report(client, demo_db, "pothole", "3", step=6)["tracking_id"], dispatcher
    )
    assert fourth["crew_id"] == spare


def test_an_open311_request_is_assigned_too(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    from geo311.resident.open311 import service as open311_service

    with demo_db.session() as s:
        jurisdiction = layers_service.get_jurisdiction(s, "demo")
        assert jurisdiction is not None
        key = open311_service.create_api_key(
            s, jurisdiction_id=jurisdiction.id, application="Test app"
        )
    lat, lon = _point(demo_db, "6")
    resp = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "pothole",
            "lat": str(lat),
            "long": str(lon),
            "attribute[position]": "lane",
        },
    )
    assert resp.status_code == 200, resp.text
    srid = resp.json()[0]["service_request_id"]
    job = _work_order(client, srid, headers["dispatcher"])
    assert job["status"] == "assigned"
    assert job["crew_id"] == _crews(client, headers["admin"])["streets"]["id"]
    # Open311 shows the request open, with no staff-only reasoning in its notes.
    public = client.get(f"/open311/v2/requests/{srid}.json", params={"extensions": "true"})
    assert public.json()[0]["status"] == "open"
    assert "eligible" not in public.text


# --- no crew: the dispatcher's queue ----------------------------------------------------------


def test_work_no_crew_has_the_skill_for_waits_in_the_queue(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin, dispatcher = headers["admin"], headers["dispatcher"]
    assert (
        client.put("/api/v1/skills/welding", json={"name": "Welding"}, headers=admin).status_code
        == 200
    )
    rules = client.get("/api/v1/dispatch/skill-rules", headers=admin).json()
    rules = [r for r in rules if r["category_code"] != "sidewalk_damage"]
    rules.append({"category_code": "sidewalk_damage", "skill_code": "welding"})
    assert client.put("/api/v1/dispatch/skill-rules", json=rules, headers=admin).status_code == 200

    report = _report(client, demo_db, "sidewalk_damage", "2")
    assert report["status"] == "new"
    job = _work_order(client, report["tracking_id"], dispatcher)
    assert (job["status"], job["crew_id"]) == ("new", None)

    row = _queue(client, dispatcher)[job["id"]]
    assert row["reason"] == "no_skill"
    assert row["detail"] == "no crew has the skills this work needs (welding)"
    assert row["skills"] == ["welding"]
    assert row["category_code"] == "sidewalk_damage"
    assert row["ward"] == "2"
    assert row["sla_state"] == "on_track"
    assert row["incident_id"] == job["incident_id"]
    lat, lon = _point(demo_db, "2")
    assert row["location"] == [pytest.approx(lon), pytest.approx(lat)]
    assert row["queued_by"] == "dispatch:rules"

    # Waiting is no public status change: one "queued" event, without a to_state.
    events = _events(demo_db, job["id"])
    assert [(e.action, e.to_state) for e in events] == [("opened", "new"), ("queued", None)]
    assert events[1].data["reason"] == "no_skill"
    updates = client.get(
        "/open311/v2/servicerequestupdates.json",
        params={
            "start_date": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "end_date": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
    )
    assert updates.status_code == 200, updates.text
    assert "welding" not in updates.text


def test_a_ward_in_no_territory_waits_until_an_admin_covers_it(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin, dispatcher = headers["admin"], headers["dispatcher"]
    _put_crew(client, admin, "streets", territory=["1", "2", "3", "4", "5"])
    report = _report(client, demo_db, "pothole", "6")
    job = _work_order(client, report["tracking_id"], dispatcher)
    row = _queue(client, dispatcher)[job["id"]]
    assert row["reason"] == "no_territory"
    assert "ward 6 is in no territory of the crews with the skills (streets)" in row["detail"]

    # Retrying changes nothing while nobody covers ward 6, and says so once in the history.
    summary = client.post("/api/v1/dispatch/queue/assign", headers=dispatcher)
    assert summary.status_code == 200, summary.text
    assert summary.json()["still_queued"]["no_territory"] >= 1
    assert _queue(client, dispatcher)[job["id"]]["queued_at"] == row["queued_at"]
    assert [e.action for e in _events(demo_db, job["id"])].count("queued") == 1

    _put_crew(client, admin, "streets", territory=["1", "2", "3", "4", "5", "6"])
    summary = client.post("/api/v1/dispatch/queue/assign", headers=dispatcher)
    assert summary.status_code == 200, summary.text
    assert summary.json()["assigned"]["streets"] >= 1
    assert "no_territory" not in summary.json()["still_queued"]
    assert job["id"] not in _queue(client, dispatcher)
    after = _work_order(client, report["tracking_id"], dispatcher)
    assert (after["status"], after["crew_id"]) == (
        "assigned",
        _crews(client, admin)["streets"]["id"],
    )
    assigned = _events(demo_db, job["id"])[-1]
    assert assigned.action == "crew_assigned"
    assert assigned.actor == "dispatch:rules (run by dispatcher:dispatcher-1)"


def test_the_backlog_with_no_crew_is_picked_up_and_a_dispatchers_choice_is_left_alone(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    dispatcher = headers["dispatcher"]
    unassigned = (
        "SELECT w.id FROM work_orders w WHERE w.crew_id IS NULL "
        "AND w.status IN ('new', 'triaged', 'reopened') ORDER BY w.id"
    )
    with demo_db.session() as s:
        backlog = [r.id for r in s.execute(text(unassigned))]
        assert len(backlog) > 5, "the demo history has open work no rule ever saw"
        held = backlog[0]
        s.execute(
            text(
                "INSERT INTO dispatch_queue (jurisdiction_id, work_order_id, reason, detail, "
                "actor) SELECT jurisdiction_id, id, 'dispatcher', 'waiting for the bridge "
                "permit', 'dispatcher:ana' FROM work_orders WHERE id = :id"
            ),
            {"id": held},
        )
    resp = client.post("/api/v1/dispatch/queue/assign", headers=dispatcher)
    assert resp.status_code == 200, resp.text
    summary = resp.json()
    assert summary["examined"] == len(backlog) - 1
    assert sum(summary["assigned"].values()) == len(backlog) - 1
    assert summary["still_queued"] == {"dispatcher": 1}
    with demo_db.session() as s:
        assert [r.id for r in s.execute(text(unassigned))] == [held]
    row = _queue(client, dispatcher)[held]
    assert (row["reason"], row["detail"], row["queued_by"]) == (
        "dispatcher",
        "waiting for the bridge permit",
        "dispatcher:ana",
    )


def test_a_backlog_run_weighs_the_work_it_has_just_given_and_its_statements_stay_few(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    # An idle second paving crew: were the work given earlier in the run not counted, it
    # would stay the least loaded and take every paving job of the backlog.
    _new_crew(client, headers["admin"], "streets", "streets-2")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(demo_db.engine, "before_cursor_execute", count)
    try:
        resp = client.post("/api/v1/dispatch/queue/assign", headers=headers["dispatcher"])
    finally:
        event.remove(demo_db.engine, "before_cursor_execute", count)
    assert resp.status_code == 200, resp.text
    summary = resp.json()
    assert summary["examined"] > 100  # the demo history's open work that no rule ever saw
    assert summary["assigned"]["streets"] > 0
    assert summary["assigned"]["streets-2"] > 0
    # Each job given has its public status change and the rules' reasoning, in that order.
    with demo_db.session() as s:
        actions = s.execute(
            text(
                "SELECT entity_id, array_agg(action ORDER BY id) FROM audit_events "
                "WHERE entity = 'work_order' AND actor = :actor GROUP BY entity_id"
            ),
            {"actor": "dispatch:rules (run by dispatcher:dispatcher-1)"},
        ).all()
    assert len(actions) == sum(summary["assigned"].values())
    assert {tuple(a[-2:]) for _, a in actions} == {("transition", "crew_assigned")}
    # A few statements for the whole backlog, not a dozen per job: the dispatcher waits on it.
    assert len(statements) < 40, len(statements)


def test_the_queue_is_most_urgent_first(
    client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin, dispatcher = headers["admin"], headers["dispatcher"]
    _put_crew(client, admin, "streets", territory=["1"])
    later = _work_order(client, _report(client, demo_db, "pothole", "4")["tracking_id"], dispatcher)
    sooner = _work_order(
        client, _report(client, demo_db, "pothole", "5")["tracking_id"], dispatcher
    )
    with demo_db.session() as s:
        s.execute(
            text(
                "UPDATE work_orders SET due_at = now() - interval '1 hour', "
                "at_risk_at = now() - interval '2 hours' WHERE id = :id"
            ),
            {"id": sooner["id"]},
        )
    rows = client.get("/api/v1/dispatch/queue", headers=dispatcher).json()
    ids = [r["work_order_id"] for r in rows]
    assert ids.index(sooner["id"]) < ids.index(later["id"])
    assert rows[ids.index(sooner["id"])]["sla_state"] == "breached"
    assert [r["due_at"] for r in rows] == sorted(r["due_at"] for r in rows)


def test_only_dispatchers_planners_and_admins_see_the_queue(
    client: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    assert client.get("/api/v1/dispatch/queue").status_code == 401
    for role in ("dispatcher", "planner", "admin"):
        assert client.get("/api/v1/dispatch/queue", headers=headers[role]).status_code == 200
    refused = client.get("/api/v1/dispatch/queue", headers=headers["crew"])
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    for role in ("crew", "planner"):
        resp = client.post("/api/v1/dispatch/queue/assign", headers=headers[role])
        assert resp.status_code == 403, role


# --- straight through the service: the due date against the crews' week -------------------


def test_work_due_on_a_saturday_goes_to_a_weekday_crew_not_to_the_queue(
    demo_db: Database,
) -> None:
    # open_incident alone announces nothing: each work order is assigned here, at the clock
    # the test sets.
    chicago = ZoneInfo("America/Chicago")  # the demo city's time zone
    # A tree down on Friday afternoon is due at 03:00 on Saturday (12 h); crews work Mon-Fri.
    friday = datetime(2026, 6, 5, 15, 0, tzinfo=chicago)
    with demo_db.session() as s:
        jurisdiction = layers_service.get_jurisdiction(s, "demo")
        assert jurisdiction is not None
        category = category_service.get_category(
            s, jurisdiction_id=jurisdiction.id, code="tree_down"
        )
        assert category is not None
        lat, lon = _point(demo_db, "1")
        ward_id = s.execute(text("SELECT id FROM wards WHERE code = '1'")).scalar_one()

        def assign(opened_at: datetime, now: datetime) -> tuple[Any, Any]:
            incident = incidents.open_incident(
                s, category=category, lon=lon, lat=lat, ward_id=ward_id, asset_id=None,
                opened_at=opened_at,
            )  # fmt: skip
            work_order = lookups.current_work_order(s, incident)
            assert work_order is not None
            choice = assignment.assign_work_order(
                s, work_order=work_order, incident=incident, category=category, actor="test",
                now=now,
            )  # fmt: skip
            return choice, work_order

        choice, work_order = assign(friday, now=friday)
        assert work_order.due_at.astimezone(chicago).isoweekday() == 6
        assert (choice.crew_code, choice.day) == ("forestry", date(2026, 6, 5))
        assert (work_order.status, work_order.crew_id) == ("assigned", choice.crew_id)

        # Seen on Saturday at noon it is overdue: it is for the crew's Monday.
        choice, _ = assign(friday, now=friday + timedelta(hours=21))
        assert (choice.crew_code, choice.day) == ("forestry", date(2026, 6, 8))
        assert "overdue" in choice.detail

        # Reported on Saturday morning and due that evening, nobody is on shift before it is
        # due: it waits, and the dispatcher is told who is back first.
        saturday = friday + timedelta(hours=18)
        choice, work_order = assign(saturday, now=saturday)
        assert choice.reason == "not_working"
        assert "the first to work after is forestry on Mon 2026-06-08" in choice.detail
        assert (work_order.status, work_order.crew_id) == ("new", None)
        s.rollback()


def test_a_failing_assignment_loses_no_report_and_the_next_run_picks_it_up(
    client: TestClient,
    demo_db: Database,
    headers: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("crew table unreadable")

    with monkeypatch.context() as patch:
        patch.setattr(dispatch_service, "crew_facts", broken)
        report = _report(client, demo_db, "pothole", "1")
    assert report["status"] == "new"
    job = _work_order(client, report["tracking_id"], headers["dispatcher"])
    assert (job["status"], job["crew_id"]) == ("new", None)
    assert job["id"] not in _queue(client, headers["dispatcher"])
    assert [e.action for e in _events(demo_db, job["id"])] == ["opened"]

    resp = client.post("/api/v1/dispatch/queue/assign", headers=headers["dispatcher"])
    assert resp.status_code == 200, resp.text
    after = _work_order(client, report["tracking_id"], headers["dispatcher"])
    assert after["status"] == "assigned"
    assert after["crew_id"] == _crews(client, headers["admin"])["streets"]["id"]


def test_the_cli_retries_the_queue_and_prints_what_it_did(
    cli: typer.Typer, client: TestClient, demo_db: Database, headers: dict[str, dict[str, str]]
) -> None:
    admin = headers["admin"]
    _put_crew(client, admin, "water", territory=["1", "2"])
    with demo_db.session() as s:
        waiting = s.execute(
            text(
                "SELECT count(*) FROM work_orders w JOIN incidents i ON i.id = w.incident_id "
                "JOIN wards d ON d.id = i.ward_id WHERE w.crew_id IS NULL "
                "AND w.status IN ('new', 'triaged', 'reopened') "
                "AND i.category_code = 'hydrant_leak' AND d.code NOT IN ('1', '2')"
            )
        ).scalar_one()
    assert waiting > 0, "the demo history has open hydrant leaks outside wards 1 and 2"
    code, out = run(cli, "crews", "assign")
    assert code == 0, out
    assert "assigned to streets" in out
    assert "waiting: no_territory" in out
    queued = _queue(client, headers["dispatcher"])
    assert sum(r["reason"] == "no_territory" for r in queued.values()) == waiting
    assert f"{waiting} wait in the queue" in out
