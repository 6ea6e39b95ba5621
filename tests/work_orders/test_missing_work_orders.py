"""Work orders made for bulk-loaded incidents (``create_missing_work_orders``) open on the same
terms as intake's: the category's business calendar sets their due and at-risk times."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from geo311.flows import submit_report
from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import DedupSettings, IntakeSettings, MediaSettings
from geo311.resident.dedup import importer
from geo311.resident.intake import service as intake_service
from layers import service as layers_service
from tests.geo311.dedup_support import jurisdiction_id, one, quiet_point
from work_orders import categories as category_service
from work_orders import incidents

# A Friday, an hour before the works depot closes for the weekend.
FRIDAY_4PM = datetime(2026, 7, 3, 16, 0, tzinfo=UTC)
WEEKDAYS_8_TO_5 = {day: [["08:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def _times_of(db: Database, external_or_tracking_id: str) -> tuple[datetime, datetime]:
    due: datetime = one(
        db,
        "SELECT w.due_at FROM reports r JOIN work_orders w "
        "ON w.jurisdiction_id = r.jurisdiction_id AND w.incident_id = r.incident_id "
        "WHERE r.external_id = :id OR r.tracking_id = :id",
        id=external_or_tracking_id,
    )
    at_risk: datetime = one(
        db,
        "SELECT w.at_risk_at FROM reports r JOIN work_orders w "
        "ON w.jurisdiction_id = r.jurisdiction_id AND w.incident_id = r.incident_id "
        "WHERE r.external_id = :id OR r.tracking_id = :id",
        id=external_or_tracking_id,
    )
    return due, at_risk


def test_a_loaded_incidents_work_order_and_an_api_reports_are_due_and_at_risk_alike(
    demo_db: Database, tmp_path: Path
) -> None:
    jid = jurisdiction_id(demo_db)
    with demo_db.session() as session:
        category_service.put_calendar(
            session,
            jurisdiction_id=jid,
            code="works",
            name="Works depot",
            timezone="UTC",
            hours=WEEKDAYS_8_TO_5,
            holidays=[],
        )
        category_service.set_category_calendar(
            session, jurisdiction_id=jid, category_code="pothole", calendar_code="works"
        )
    sla_hours = float(
        one(demo_db, "SELECT sla_hours FROM service_categories WHERE code = 'pothole'")
    )
    loaded_at, reported_at = quiet_point(demo_db, nth=0), quiet_point(demo_db, nth=1)

    # A bulk load: the incident, no work order.
    export = tmp_path / "export.csv"
    with export.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon"])
        out.writerow(["HIST-1", "2026-07-03 16:00:00", "pothole", loaded_at[1], loaded_at[0]])
    with demo_db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
    importer.import_reports(
        demo_db,
        jurisdiction=jurisdiction,
        path=export,
        mapping=importer.ImportMapping.model_validate(
            {"columns": {"closed": None}, "timezone": "UTC"}
        ),
        settings=DedupSettings(),
    )
    with demo_db.session() as session:
        assert incidents.create_missing_work_orders(session, jurisdiction_id=jid) >= 1

    draft = intake_service.parse_report_form(
        {"category": "pothole", "lon": str(reported_at[0]), "lat": str(reported_at[1])},
        channel="api",
        settings=IntakeSettings(),
    )
    with demo_db.sessions() as session:
        report = submit_report.submit(
            session,
            jurisdiction_id=jid,
            jurisdiction_slug="demo",
            draft=draft,
            photo=None,
            media=LocalMediaStore(tmp_path),
            media_settings=MediaSettings(),
            now=FRIDAY_4PM,
        ).report
        tracking_id = report.tracking_id
        session.commit()

    (loaded_due, loaded_risk), (api_due, api_risk) = (
        _times_of(demo_db, "HIST-1"),
        _times_of(demo_db, tracking_id),
    )
    assert (loaded_due, loaded_risk) == (api_due, api_risk)
    # Both in the depot's open hours: the weekend does not count, on the wall clock it would.
    wall_clock_risk = FRIDAY_4PM + timedelta(hours=sla_hours * 0.75)
    assert api_risk > wall_clock_risk
    assert api_risk.astimezone(UTC).weekday() < 5
    assert 8 <= api_risk.astimezone(UTC).hour <= 17
    assert FRIDAY_4PM < api_risk < api_due
