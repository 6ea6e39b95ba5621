"""A crew user belongs to one crew and acts only on that crew's work; staff writes name the
version they read (428 otherwise). Through the HTTP API and the CLI, on the demo city."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from geo311.cli import app as geo311_cli
from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.media.models import Photo
from geo311.kernel.settings import get_settings
from tests.support import (
    give_to_crew,
    jpeg,
    move_work_order,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    read_version,
    staff_token,
    work_order_of,
)
from work_orders.models import AuditEvent

PROBLEM = "application/problem+json"


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def who(demo_db: Database) -> dict[str, dict[str, str]]:
    """Callers: a streets crew user, a water crew user, a crew user in no crew, staff."""
    return {
        "streets": _bearer(staff_token(demo_db, "crew", "sam", crew="streets")),
        "water": _bearer(staff_token(demo_db, "crew", "wanda", crew="water")),
        "nocrew": _bearer(staff_token(demo_db, "crew", "nadia")),
        "dispatcher": _bearer(staff_token(demo_db, "dispatcher")),
        "admin": _bearer(staff_token(demo_db, "admin")),
    }


def _job(db: Database, crew: str | None, *statuses: str) -> int:
    """Return a fresh work order moved through ``statuses`` and given to ``crew``."""
    work_order_id = work_order_of(db, open_incident_with_reporters(db, [{"email": "r@x.org"}]))
    move_work_order(db, work_order_id, *statuses)
    give_to_crew(db, work_order_id, crew)
    return work_order_id


def _state(db: Database, work_order_id: int) -> tuple[Any, ...]:
    """What a refused write must leave alone: status, version, crew, audit trail, photos."""
    with db.session() as s:
        row = s.execute(
            text("SELECT status, version, crew_id, completed_by FROM work_orders WHERE id = :i"),
            {"i": work_order_id},
        ).one()
        audit = s.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.entity == "work_order", AuditEvent.entity_id == work_order_id)
        )
        photos = s.scalar(select(func.count()).select_from(Photo).where(Photo.kind == "after"))
    return (*row, audit, photos)


def _wo_url(work_order_id: int, action: str = "") -> str:
    return f"/api/v1/work-orders/{work_order_id}" + (f"/{action}" if action else "")


def test_a_crew_acts_on_its_own_work_and_is_refused_on_another_crews(
    client: TestClient, demo_db: Database, who: dict[str, dict[str, str]]
) -> None:
    ours = _job(demo_db, "streets", "triaged", "assigned")
    theirs = _job(demo_db, "water", "triaged", "assigned")
    for headers in (who["streets"], who["nocrew"]):
        seen = read_version(client, _wo_url(theirs), headers)  # reading is allowed
        before = _state(demo_db, theirs)
        for action, body in (
            ("transitions", {"json": {"to": "in_progress"}}),
            ("hold", {"json": {"reason": "no permit"}}),
            ("resume", {"json": {}}),
            (
                "complete",
                {
                    "files": {"photo": ("a.jpg", jpeg(), "image/jpeg")},
                    "data": {"resolution_code": "repaired"},
                },
            ),
        ):
            r = client.post(_wo_url(theirs, action), headers={**headers, **seen}, **body)
            assert r.status_code == 403, (action, r.text)
            assert r.headers["content-type"] == PROBLEM
            assert "crew" in r.json()["detail"]
        assert _state(demo_db, theirs) == before
    no_crew = client.post(
        _wo_url(theirs, "transitions"),
        json={"to": "in_progress"},
        headers={**who["nocrew"], **read_version(client, _wo_url(theirs), who["nocrew"])},
    )
    assert "belongs to no crew" in no_crew.json()["detail"]
    # The same crew user starts and completes its own crew's job.
    started = client.post(
        _wo_url(ours, "transitions"),
        json={"to": "in_progress"},
        headers={**who["streets"], **read_version(client, _wo_url(ours), who["streets"])},
    )
    assert started.status_code == 200, started.text
    done = client.post(
        _wo_url(ours, "complete"),
        files={"photo": ("a.jpg", jpeg(), "image/jpeg")},
        data={"resolution_code": "repaired", "expected_version": str(started.json()["version"])},
        headers=who["streets"],
    )
    assert done.status_code == 200, done.text
    assert done.json()["completed_by"] == "crew:sam"
    # Work in the dispatcher's queue (no crew) is nobody's crew's work.
    queued = _job(demo_db, None, "triaged")
    r = client.post(
        _wo_url(queued, "hold"),
        json={"reason": "x"},
        headers={**who["streets"], **read_version(client, _wo_url(queued), who["streets"])},
    )
    assert r.status_code == 403


def test_a_crew_reads_only_its_own_route_and_its_own_requesters(
    client: TestClient, demo_db: Database, who: dict[str, dict[str, str]]
) -> None:
    day = "2026-06-01"
    plan = client.post(f"/api/v1/plans?date={day}", headers=who["dispatcher"])
    assert plan.status_code == 200, plan.text
    own = client.get(f"/api/v1/plans/{day}/crews/streets", headers=who["streets"])
    assert own.status_code == 200
    assert [r["crew"] for r in own.json()["routes"]] == ["streets"]
    other = client.get(f"/api/v1/plans/{day}/crews/water", headers=who["streets"])
    assert other.status_code == 403
    assert other.headers["content-type"] == PROBLEM
    assert client.get(f"/api/v1/plans/{day}/crews/water", headers=who["nocrew"]).status_code == 403
    assert client.get(f"/api/v1/plans/{day}", headers=who["streets"]).status_code == 403
    # A requester's contact: for the crew doing the work.
    work_order_id = _job(demo_db, "water", "triaged", "assigned")
    with demo_db.session() as s:
        tracking_id = s.execute(
            text(
                "SELECT r.tracking_id FROM reports r JOIN work_orders w "
                "ON w.incident_id = r.incident_id WHERE w.id = :i"
            ),
            {"i": work_order_id},
        ).scalar_one()
    url = f"/api/v1/staff/reports/{tracking_id}"
    assert client.get(url, headers=who["streets"]).status_code == 403
    assert client.get(url, headers=who["water"]).json()["contact"]["email"] == "r@x.org"


def test_an_admin_sets_a_users_crew_and_a_user_is_on_one_crew_only(
    client: TestClient, demo_db: Database, who: dict[str, dict[str, str]]
) -> None:
    crews = {c["code"]: c for c in client.get("/api/v1/crews", headers=who["admin"]).json()}
    assert crews["streets"]["staff"] == ["sam"]
    assert client.get("/api/v1/me/crew", headers=who["nocrew"]).status_code == 404
    url = "/api/v1/staff/nadia/crew"
    assert client.put(url, json={"crew": "water"}, headers=who["dispatcher"]).status_code == 403
    unknown = client.put(url, json={"crew": "nope"}, headers=who["admin"])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_crew")
    not_crew = client.put(
        "/api/v1/staff/dispatcher-1/crew", json={"crew": "water"}, headers=who["admin"]
    )
    assert not_crew.status_code == 422
    assert "only crew users" in not_crew.json()["detail"]
    assert (
        client.put(
            "/api/v1/staff/ghost/crew", json={"crew": "water"}, headers=who["admin"]
        ).status_code
        == 404
    )

    job = _job(demo_db, "water", "triaged", "assigned")
    joined = client.put(url, json={"crew": "water"}, headers=who["admin"])
    assert joined.json() == {"name": "nadia", "role": "crew", "crew": "water"}
    assert client.get("/api/v1/me/crew", headers=who["nocrew"]).json()["code"] == "water"
    held = client.post(
        _wo_url(job, "hold"),
        json={"reason": "parts"},
        headers={**who["nocrew"], **read_version(client, _wo_url(job), who["nocrew"])},
    )
    assert held.status_code == 200, held.text
    # Moving sam to water takes him off streets; both crews' versions move on.
    moved = client.put("/api/v1/staff/sam/crew", json={"crew": "water"}, headers=who["admin"])
    assert moved.status_code == 200
    after = {c["code"]: c for c in client.get("/api/v1/crews", headers=who["admin"]).json()}
    assert after["streets"]["staff"] == []
    assert after["water"]["staff"] == ["nadia", "sam", "wanda"]
    assert after["streets"]["version"] == crews["streets"]["version"] + 1
    assert after["water"]["version"] > crews["water"]["version"]
    # Off every crew: reads, acts on nothing.
    client.put(url, json={"crew": None}, headers=who["admin"])
    resumed = client.post(
        _wo_url(job, "resume"),
        json={},
        headers={**who["nocrew"], **read_version(client, _wo_url(job), who["nocrew"])},
    )
    assert resumed.status_code == 403


def test_a_crews_staff_list_replaces_its_membership_and_deleting_the_crew_clears_it(
    client: TestClient, demo_db: Database, who: dict[str, dict[str, str]]
) -> None:
    admin = who["admin"]
    read = client.get("/api/v1/crews/streets", headers=admin)
    body = {k: v for k, v in read.json().items() if k not in ("id", "version", "updated_at")}
    bad = client.put(
        "/api/v1/crews/streets",
        json={**body, "staff": ["nadia", "dispatcher-1", "ghost"]},
        headers={**admin, "If-Match": read.headers["ETag"]},
    )
    assert bad.status_code == 422
    assert {e["code"] for e in bad.json()["errors"]} == {"not_crew", "unknown_staff_user"}
    assert client.get("/api/v1/crews/streets", headers=admin).json()["staff"] == ["sam"]
    # Rename the crew and give it nadia and wanda instead of sam.
    put = client.put(
        "/api/v1/crews/streets",
        json={**body, "code": "roads", "staff": ["nadia", "wanda"]},
        headers={**admin, "If-Match": read.headers["ETag"]},
    )
    assert put.status_code == 200, put.text
    assert put.json()["staff"] == ["nadia", "wanda"]
    water = client.get("/api/v1/crews/water", headers=admin).json()
    assert water["staff"] == []  # wanda left water: one crew each
    assert client.get("/api/v1/me/crew", headers=who["nocrew"]).json()["code"] == "roads"
    assert client.get("/api/v1/me/crew", headers=who["streets"]).status_code == 404
    # Leaving staff out keeps the membership as it is.
    again = client.put(
        "/api/v1/crews/roads",
        json={
            k: v for k, v in put.json().items() if k not in ("id", "version", "updated_at", "staff")
        }
        | {"name": "Roads crew"},
        headers={**admin, "If-Match": put.headers["ETag"]},
    )
    assert again.json()["staff"] == ["nadia", "wanda"]
    assert client.delete("/api/v1/crews/roads", headers=admin).status_code == 204
    with demo_db.session() as s:
        users = {n: c for n, c in s.execute(text("SELECT name, crew_id FROM staff_users"))}
    assert users["nadia"] is None
    assert users["wanda"] is None
    assert client.get("/api/v1/me/crew", headers=who["nocrew"]).status_code == 404


@pytest.mark.parametrize(
    ("action", "kwargs"),
    [
        ("transitions", {"json": {"to": "in_progress"}}),
        ("hold", {"json": {"reason": "no permit"}}),
        ("transfer", {"json": {"department": "state-dot", "reason": "state road"}}),
        (
            "complete",
            {
                "files": {"photo": ("a.jpg", jpeg(), "image/jpeg")},
                "data": {"resolution_code": "repaired"},
            },
        ),
    ],
)
@pytest.mark.parametrize("if_match", [None, "*", ""])
def test_a_staff_write_without_a_version_gets_428_and_changes_nothing(
    client: TestClient,
    demo_db: Database,
    who: dict[str, dict[str, str]],
    action: str,
    kwargs: dict[str, Any],
    if_match: str | None,
) -> None:
    job = _job(demo_db, "streets", "triaged", "assigned")
    before = _state(demo_db, job)
    headers = who["dispatcher"] | ({"If-Match": if_match} if if_match is not None else {})
    r = client.post(_wo_url(job, action), headers=headers, **kwargs)
    assert r.status_code == 428, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "precondition_required"
    assert "If-Match" in r.json()["detail"]
    assert _state(demo_db, job) == before


def test_resume_incident_and_crew_writes_need_a_version_too(
    client: TestClient, demo_db: Database, who: dict[str, dict[str, str]]
) -> None:
    job = _job(demo_db, "streets", "triaged", "assigned")
    held = client.post(
        _wo_url(job, "hold"),
        json={
            "reason": "parts",
            "expected_version": read_version(client, _wo_url(job), who["streets"])[
                "If-Match"
            ].strip('"'),
        },
        headers=who["streets"],
    )
    assert held.status_code == 200, held.text
    resume = client.post(_wo_url(job, "resume"), json={}, headers=who["streets"])
    assert resume.status_code == 428
    incident_id = held.json()["incident_id"]
    r = client.post(
        f"/api/v1/incidents/{incident_id}/transitions",
        json={"to": "cancelled", "reason": "duplicate"},
        headers=who["dispatcher"],
    )
    assert (r.status_code, r.json()["code"]) == (428, "precondition_required")
    crew = client.get("/api/v1/crews/water", headers=who["admin"]).json()
    body = {k: v for k, v in crew.items() if k not in ("id", "version", "updated_at")}
    put = client.put("/api/v1/crews/water", json={**body, "name": "X"}, headers=who["admin"])
    assert (put.status_code, put.json()["code"]) == (428, "precondition_required")
    assert client.get("/api/v1/crews/water", headers=who["admin"]).json()["name"] == crew["name"]


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, demo_db: Database) -> Iterator[None]:
    monkeypatch.setenv("GEO311_DB__URL", demo_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("GEO311_JURISDICTION", "demo")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})
    return result.exit_code, result.output


def _crew_of(db: Database, name: str) -> str | None:
    with db.session() as s:
        return s.execute(
            text(
                "SELECT c.code FROM staff_users u LEFT JOIN crews c ON c.id = u.crew_id "
                "WHERE u.name = :n"
            ),
            {"n": name},
        ).scalar_one_or_none()


def test_token_create_puts_a_crew_user_on_a_crew(cli_env: None, demo_db: Database) -> None:
    code, out = _run(
        geo311_cli, "token", "create", "--name", "rosa", "--role", "crew", "--crew", "lighting"
    )
    assert code == 0, out
    token = out.strip()
    with demo_db.session() as s:
        principal = auth_service.authenticate(s, token)
    assert _crew_of(demo_db, "rosa") == "lighting"
    assert principal.crew_id is not None
    code, out = _run(
        geo311_cli, "token", "create", "--name", "rita", "--role", "crew", "--crew", "nope"
    )
    assert code == 1
    assert "No crew 'nope'" in out
    with demo_db.session() as s:  # no user, no token for a crew that does not exist
        assert (
            s.execute(text("SELECT count(*) FROM staff_users WHERE name = 'rita'")).scalar_one()
            == 0
        )
    code, out = _run(
        geo311_cli, "token", "create", "--name", "dora", "--role", "dispatcher", "--crew", "water"
    )
    assert code == 2
    assert "--crew is for crew users" in out


def test_a_crew_file_names_the_staff_of_each_crew(
    cli_env: None, demo_db: Database, tmp_path: Path
) -> None:
    staff_token(demo_db, "crew", "tom")
    staff_token(demo_db, "crew", "uma", crew="water")
    with demo_db.session() as s:
        crew = s.execute(
            text("SELECT depot_name, ST_X(depot), ST_Y(depot) FROM crews WHERE code = 'lighting'")
        ).one()
    file = tmp_path / "crews.json"
    file.write_text(
        json.dumps(
            {
                "crews": [
                    {
                        "code": "lighting",
                        "name": "Lighting crew",
                        "depot": {"lon": crew[1], "lat": crew[2], "name": crew[0]},
                        "shift_start": "07:00",
                        "shift_end": "15:30",
                        "skills": ["electrical"],
                        "territory": ["1", "2"],
                        "staff": ["tom", "uma"],
                    }
                ]
            }
        )
    )
    code, out = _run(geo311_cli, "crews", "load", str(file))
    assert code == 0, out
    assert (_crew_of(demo_db, "tom"), _crew_of(demo_db, "uma")) == ("lighting", "lighting")
    code, out = _run(geo311_cli, "crews", "list")
    assert "tom, uma" in out
    file.write_text(file.read_text().replace('"tom"', '"nobody"'))
    code, out = _run(geo311_cli, "crews", "load", str(file))
    assert code == 1
    assert "nobody" in out
    assert _crew_of(demo_db, "tom") == "lighting"  # all or nothing
