"""/healthz and /readyz, and what the API answers while its database is unreachable."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from tests.support import free_port, notify_settings, pooled_app, wait_until


def test_healthz_is_ok_with_the_database_up_and_no_worker_expected(
    db: Database, tmp_path: Path
) -> None:
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=db)) as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["checks"]["database"]["ok"] is True
    assert "no worker expected" in health.json()["checks"]["worker"]["detail"]
    assert ready.status_code == 200
    assert ready.json()["checks"]["migrations"]["ok"] is True
    assert health.headers["Cache-Control"] == "no-store"


def test_a_registered_worker_that_stopped_heartbeating_makes_healthz_503(
    db: Database, tmp_path: Path
) -> None:
    settings = notify_settings(tmp_path, 1, stalled_worker_s=30.0)
    with db.session() as session:
        session.execute(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - interval '2 minutes')"
            )
        )
    with TestClient(pooled_app(settings, db=db)) as client:
        stale = client.get("/healthz")
        with db.session() as session:
            session.execute(text("UPDATE procrastinate_workers SET last_heartbeat = now()"))
        fresh = client.get("/healthz")
    assert stale.status_code == 503
    assert stale.json()["status"] == "unhealthy"
    assert stale.json()["checks"]["database"]["ok"] is True
    assert stale.json()["checks"]["worker"] == {
        "ok": False,
        "detail": "no worker has sent a heartbeat in the last 30 s",
    }
    assert fresh.status_code == 200


def test_healthz_follows_the_in_process_worker(demo_db: Database, tmp_path: Path) -> None:
    settings = notify_settings(tmp_path, free_port())
    worker = BackgroundWorker(settings, demo_db)
    with TestClient(pooled_app(settings, db=demo_db, worker=worker)) as client:
        # Expected (it belongs to this process) but not started: unhealthy.
        before = client.get("/healthz")
        with worker:
            assert wait_until(lambda: client.get("/healthz").status_code == 200)
            running = client.get("/healthz").json()
    assert before.status_code == 503
    assert "in-process worker is starting" in before.json()["checks"]["worker"]["detail"]
    assert running["checks"]["worker"]["detail"] == "1 worker(s) heartbeating"


def test_readyz_is_503_until_the_schema_is_migrated(db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0001_initial_schema'"))
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=db)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    migrations = ready.json()["checks"]["migrations"]
    assert migrations["ok"] is False
    assert "geo311 db migrate" in migrations["detail"]


def _dead_database(tmp_path: Path) -> Database:
    """A Database whose server is not there: a socket directory nobody listens in."""
    return Database.connect(
        f"postgresql+psycopg://geo311@/geo311?host={tmp_path / 'no-server'}&port=5432",
        pool_size=1,
    )


def test_with_the_database_unreachable_health_is_503_and_routes_answer_503_retry_after(
    tmp_path: Path,
) -> None:
    dead = _dead_database(tmp_path)
    settings = notify_settings(tmp_path, 1)
    try:
        with TestClient(pooled_app(settings, db=dead)) as client:
            health = client.get("/healthz")
            ready = client.get("/readyz")
            categories = client.get("/api/v1/categories")
            report = client.post(
                "/api/v1/reports",
                data={"category": "pothole", "lat": "40.0", "lon": "-75.0"},
            )
            open311_json = client.get("/open311/v2/services.json")
            open311_xml = client.get("/open311/v2/requests.xml")
    finally:
        dead.dispose()
    assert health.status_code == ready.status_code == 503
    assert health.json()["checks"]["database"]["ok"] is False
    assert health.json()["checks"]["database"]["detail"] == "unreachable (OperationalError)"
    assert "no-server" not in health.text  # the socket's path (or a host name) stays private
    assert ready.json()["checks"]["database"]["ok"] is False
    for response in (categories, report):
        assert response.status_code == 503
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["Retry-After"] == "5"
        assert response.json()["code"] == "database_unavailable"
        assert "no-server" not in response.text  # nothing of the connection string leaks
    assert open311_json.status_code == 503
    assert open311_json.headers["Retry-After"] == "5"
    assert open311_json.json() == [
        {"code": 503, "description": "The service is briefly unavailable; try again."}
    ]
    assert open311_xml.status_code == 503
    assert "<code>503</code>" in open311_xml.text
    assert open311_xml.headers["Retry-After"] == "5"
