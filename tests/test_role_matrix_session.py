"""The access table of ``test_role_matrix`` again, with every staff caller signed in through
/login (a session cookie, its CSRF token and our Origin on writes) instead of a bearer token:
the answers must be the same, because the role checks live in one place."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.auth import accounts
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings, SigninSettings
from geo311.resident.open311 import service as open311_service
from layers import service as layers_service
from tests import test_role_matrix as table
from tests.support import give_to_crew, open_incident_with_reporters, pooled_app, work_order_of

PASSWORD = "matrix password 311"
# Routes whose access the session cannot share, and why:
NOT_BY_SESSION = {
    # Signing out would end the caller's session for the rows after it.
    "POST /logout",
}
# Pages read the session cookie only, so a token's row (sent to sign in) differs from a
# session's (the role decides): the session's answers.
BY_SESSION = {
    "GET /planner": "ok   403  403  403  ok   ok   ok   ok",
    "GET /crew": "ok   ok   ok   ok   ok   403  ok   ok",
    "GET /dispatch": "ok   403  403  403  ok   403  ok   ok",
}
STAFF = {  # caller -> (name, role, crew)
    "own": ("sam", "crew", "streets"),
    "other": ("wanda", "crew", "water"),
    "none": ("nadia", "crew", None),
    "disp": ("dora", "dispatcher", None),
    "plan": ("pat", "planner", None),
    "admin": ("ada", "admin", None),
}


def _signed_in_headers(app: object, name: str) -> dict[str, str]:
    """Sign ``name`` in through the form; return what its pages send: cookie, token, Origin."""
    with TestClient(app) as browser:  # type: ignore[arg-type]
        page = browser.get("/login")
        token = re.search(
            r'id="signin">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page.text
        )
        assert token is not None
        signed = browser.post(
            "/login",
            data={"name": name, "password": PASSWORD, "csrf_token": token.group(1)},
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        session_id = browser.cookies["geo311_session"]
        csrf = browser.get("/api/v1/session").json()["csrf_token"]
    return {
        "Cookie": f"geo311_session={session_id}",
        "X-CSRF-Token": csrf,
        "Origin": "http://testserver",
    }


@pytest.fixture
def world(demo_db: Database, tmp_path: Path) -> Iterator[table.World]:
    from dispatch import service as dispatch_service

    incident_id = open_incident_with_reporters(demo_db, [{"email": "r@example.org"}])
    work_order_id = work_order_of(demo_db, incident_id)
    give_to_crew(demo_db, work_order_id, "streets")
    signin = SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
    hashed = Passwords(signin).hash(PASSWORD)
    with demo_db.session() as s:
        jurisdiction = layers_service.get_jurisdiction(s, "demo")
        assert jurisdiction is not None
        # The city named: on Citus a read of every shard and then a write to a reference
        # table (the key) cannot share a transaction.
        tracking_id = s.execute(
            text("SELECT tracking_id FROM reports WHERE jurisdiction_id = :j AND incident_id = :i"),
            {"i": incident_id, "j": jurisdiction.id},
        ).scalar_one()
        key = open311_service.create_api_key(
            s, jurisdiction_id=jurisdiction.id, application="matrix"
        )
        for name, role, crew in STAFF.values():
            accounts.create_user(
                s, name=name, role=role, password_hash=hashed, jurisdiction_id=jurisdiction.id
            )
            if crew is not None:
                dispatch_service.set_membership(
                    s, jurisdiction_id=jurisdiction.id, user_name=name, crew_code=crew
                )
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", signin=signin)
    app = pooled_app(settings, db=demo_db)
    with TestClient(app) as client:
        headers: dict[str, dict[str, str]] = {"anon": {}, "key": {}}
        headers |= {caller: _signed_in_headers(app, who[0]) for caller, who in STAFF.items()}
        values = {
            **VALUES,
            "work_order_id": str(work_order_id),
            "incident_id": str(incident_id),
            "tracking_id": tracking_id,
            "service_request_id": tracking_id,
        }
        yield table.World(client, headers, {"key": {"api_key": key}}, values)


VALUES = {
    "code": "streets",
    "category_code": "pothole",
    "service_code": "pothole",
    "day": "2026-06-01",
    "name": "nadia",
    "move_id": "999999999",
    "endpoint_id": "999999999",
    "token": "no-such-token",
    "key": "no-such-mail",
    "fmt": "json",
    "path": "nothing",
    "path:path": "nothing",
}


def test_a_signed_in_session_gets_the_answers_a_token_gets(
    world: table.World, demo_db: Database
) -> None:
    cells = [
        (route, caller, answer, req)
        for route, (row, req) in table.MATRIX.items()
        if route not in NOT_BY_SESSION
        for caller, answer in zip(table.CALLERS, BY_SESSION.get(route, row).split(), strict=True)
    ]
    refused = [c for c in cells if c[2] in ("401", "403")]
    allowed = [c for c in cells if c[2] not in ("401", "403")]
    before = table._fingerprint(demo_db)
    wrong = [table._check(world, *cell) for cell in refused]
    after = table._fingerprint(demo_db)
    assert sorted(t for t in before if before[t] != after[t]) == [], "a refusal stored something"
    wrong += [table._check(world, *cell) for cell in allowed]
    mismatches = [w for w in wrong if w]
    assert mismatches == [], "\n" + "\n".join(mismatches)
