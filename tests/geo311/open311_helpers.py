"""What the Open311 tests share: the app on the demo city, an API key, points in each ward,
and a way to join two reports whatever dedup decided."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.media.uploads import process_upload
from geo311.kernel.settings import MediaSettings, Settings
from geo311.resident.intake.models import Report
from geo311.resident.open311 import service as open311_service
from layers import service as layers_service
from tests.support import pooled_app
from work_orders import completion, transitions
from work_orders.models import Incident, WorkOrder

BASE = "/open311/v2"
PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"
STORED = ("reports", "incidents", "photos", "requesters", "open311_submissions", "subscriptions")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        jurisdiction="demo",
        public_base_url="http://testserver",
        media=MediaSettings(max_bytes=2_000_000, max_pixels=30_000_000),
    )


@pytest.fixture
def client(demo_db: Database, settings: Settings) -> Iterator[TestClient]:
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


@pytest.fixture
def api_key(demo_db: Database) -> str:
    """A live key of an application called "Test app"."""
    with demo_db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
        return open311_service.create_api_key(
            session, jurisdiction_id=jurisdiction.id, application="Test app"
        )


def ward_points(db: Database) -> dict[str, tuple[float, float]]:
    """Return a point well inside each demo ward, by ward code: (lat, long)."""
    with db.session() as s:
        rows = s.execute(
            text(
                "SELECT code, ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)) "
                "FROM wards"
            )
        ).all()
    return {code: (lat, lon) for code, lat, lon in rows}


def counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in STORED}


def media_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def close_incident(
    db: Database,
    tracking_id: str,
    *,
    note: str,
    media_root: Path,
    resolution_code: str = "repaired",
) -> datetime:
    """Close the incident of a report as a crew finishing it does — an after-photo, the
    crew's note, a resolution code — (given the job first when the assignment rules have
    not); return when it closed."""
    after = process_upload((PHOTOS / "pothole_ward4.jpg").read_bytes(), MediaSettings())
    with db.session() as session:
        report = session.scalar(select(Report).where(Report.tracking_id == tracking_id))
        assert report is not None
        work_order = session.scalar(
            select(WorkOrder).where(
                WorkOrder.jurisdiction_id == report.jurisdiction_id,
                WorkOrder.incident_id == report.incident_id,
            )
        )
        assert work_order is not None
        if work_order.status != "assigned":
            transitions.transition(
                session, incident_or_work_order=work_order, to="assigned", actor="dispatcher:test"
            )
        completion.complete_work_order(
            session,
            work_order=work_order,
            actor="crew:test",
            photo=after,
            note=note,
            resolution_code=resolution_code,
            media=LocalMediaStore(media_root),
            jurisdiction_slug="demo",
        )
        incident = session.get(Incident, (report.jurisdiction_id, report.incident_id))
        assert incident is not None
        assert incident.status == "closed"
        assert incident.closed_at is not None
        return incident.closed_at


def join_incident(db: Database, duplicate: str, original: str) -> None:
    """Attach report ``duplicate`` to the incident of report ``original``.

    Open311 reads duplicates from the shared incident alone, so this is all a join needs.
    """
    with db.session() as session:
        first = session.scalar(select(Report).where(Report.tracking_id == original))
        second = session.scalar(select(Report).where(Report.tracking_id == duplicate))
        assert first is not None
        assert second is not None
        second.incident_id = first.incident_id
