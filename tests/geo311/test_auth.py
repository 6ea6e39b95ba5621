"""Staff tokens and roles: residents need no account, staff endpoints need the right role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.support import pooled_app


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(pooled_app(Settings(data_dir=tmp_path), db=demo_db)) as c:
        yield c


def _token(db: Database, name: str, role: str) -> str:
    with db.session() as s:
        return auth_service.create_token(s, name=name, role=role)


def _report(client: TestClient, db: Database) -> str:
    with db.session() as s:
        lat, lon = s.execute(
            text(
                "SELECT ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                "FROM wards LIMIT 1"
            )
        ).one()
    resp = client.post(
        "/api/v1/reports",
        data={
            "category": "pothole",
            "lat": str(lat),
            "lon": str(lon),
            "email": "res@example.org",
            "phone": "+1 612 555 0100",
        },
    )
    assert resp.status_code == 201
    tracking_id: str = resp.json()["tracking_id"]
    return tracking_id


def test_staff_view_needs_a_token(client: TestClient, demo_db: Database) -> None:
    tid = _report(client, demo_db)
    resp = client.get(f"/api/v1/staff/reports/{tid}")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    resp = client.get(
        f"/api/v1/staff/reports/{tid}", headers={"Authorization": "Bearer g311_made_up"}
    )
    assert resp.status_code == 401


def test_dispatcher_sees_the_contact_and_planner_does_not(
    client: TestClient, demo_db: Database
) -> None:
    tid = _report(client, demo_db)
    dispatcher = _token(demo_db, "dana", "dispatcher")
    planner = _token(demo_db, "pat", "planner")
    admin = _token(demo_db, "ada", "admin")

    resp = client.get(
        f"/api/v1/staff/reports/{tid}", headers={"Authorization": f"Bearer {dispatcher}"}
    )
    assert resp.status_code == 200
    assert resp.json()["contact"] == {
        "email": "res@example.org",
        "phone": "+1 612 555 0100",
        "language": "en",
    }
    resp = client.get(
        f"/api/v1/staff/reports/{tid}", headers={"Authorization": f"Bearer {planner}"}
    )
    assert resp.status_code == 403
    assert "planner" in resp.json()["detail"]
    resp = client.get(f"/api/v1/staff/reports/{tid}", headers={"Authorization": f"Bearer {admin}"})
    assert resp.status_code == 200


def test_a_revoked_token_stops_working(client: TestClient, demo_db: Database) -> None:
    token = _token(demo_db, "cris", "crew")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).json() == {"name": "cris", "role": "crew"}
    with demo_db.session() as s:
        assert auth_service.revoke_token(s, token=token)
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_only_a_hash_of_the_token_is_stored(demo_db: Database) -> None:
    token = _token(demo_db, "sam", "crew")
    with demo_db.session() as s:
        stored = s.execute(text("SELECT token_sha256 FROM api_tokens")).scalars().all()
    assert token not in stored
    assert len(stored) == 1
    assert len(stored[0]) == 64


def test_unknown_role_is_refused(demo_db: Database) -> None:
    from geo311.kernel.errors import ValidationFailed

    with pytest.raises(ValidationFailed), demo_db.session() as s:
        auth_service.create_token(s, name="x", role="mayor")
