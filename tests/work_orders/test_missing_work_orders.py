"""Work orders made for bulk-loaded incidents (``create_missing_work_orders``) open on the same
terms as intake's: the category's business calendar sets their due and at-risk times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from geo311.kernel.database import Database
from tests.geo311.dedup_support import jurisdiction_id, quiet_point, report_a_pothole
from tests.geo311.test_opening_rows import (
    FRIDAY_4PM,
    import_a_pothole,
    pothole_on_a_works_calendar,
)
from work_orders import incidents


def _times_of(db: Database, external_or_tracking_id: str) -> tuple[datetime, datetime]:
    with db.session() as session:
        due, at_risk = session.execute(
            text(
                "SELECT w.due_at, w.at_risk_at FROM reports r JOIN work_orders w "
                "ON w.jurisdiction_id = r.jurisdiction_id AND w.incident_id = r.incident_id "
                "WHERE r.external_id = :id OR r.tracking_id = :id"
            ),
            {"id": external_or_tracking_id},
        ).one()
    return due, at_risk


def test_a_loaded_incidents_work_order_and_an_api_reports_are_due_and_at_risk_alike(
    demo_db: Database, tmp_path: Path
) -> None:
    sla_hours = pothole_on_a_works_calendar(demo_db)
    loaded_at, reported_at = quiet_point(demo_db, nth=0), quiet_point(demo_db, nth=1)
    # A bulk load: the incident, no work order.
    import_a_pothole(demo_db, tmp_path, loaded_at)
    with demo_db.session() as session:
        jid = jurisdiction_id(demo_db)
        assert incidents.create_missing_work_orders(session, jurisdiction_id=jid) >= 1
    tracking_id = report_a_pothole(demo_db, tmp_path, reported_at, now=FRIDAY_4PM)

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
