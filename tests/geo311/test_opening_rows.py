"""One way to open an incident: intake and the bulk importer build the same rows, so the same
instant in the same category is due at the same time, counted in the category's business
calendar."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from geo311.kernel.database import Database
from geo311.kernel.settings import DedupSettings
from geo311.resident.dedup import importer
from layers import service as layers_service
from tests.geo311.dedup_support import jurisdiction_id, one, quiet_point, report_a_pothole
from work_orders import categories as category_service
from work_orders import sla
from work_orders.opening import Terms, due_at_many

# A Friday, an hour before the works depot closes for the weekend.
FRIDAY_4PM = datetime(2026, 7, 3, 16, 0, tzinfo=UTC)
WEEKDAYS_8_TO_5 = {day: [["08:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def _due_of(db: Database, external_or_tracking_id: str) -> datetime:
    due: datetime = one(
        db,
        "SELECT i.due_at FROM reports r JOIN incidents i "
        "ON i.jurisdiction_id = r.jurisdiction_id AND i.id = r.incident_id "
        "WHERE r.external_id = :id OR r.tracking_id = :id",
        id=external_or_tracking_id,
    )
    return due


def pothole_on_a_works_calendar(db: Database) -> float:
    """Put potholes on a works depot's weekday 8–17 calendar; return their SLA in hours."""
    jid = jurisdiction_id(db)
    with db.session() as session:
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
    return float(one(db, "SELECT sla_hours FROM service_categories WHERE code = 'pothole'"))


def import_a_pothole(db: Database, tmp_path: Path, at: tuple[float, float]) -> None:
    """Import one pothole report, ``HIST-1``, made at ``FRIDAY_4PM`` at ``at`` (lon, lat)."""
    export = tmp_path / "export.csv"
    with export.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon"])
        out.writerow(["HIST-1", "2026-07-03 16:00:00", "pothole", at[1], at[0]])
    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
    importer.import_reports(
        db,
        jurisdiction=jurisdiction,
        path=export,
        mapping=importer.ImportMapping.model_validate(
            {"columns": {"closed": None}, "timezone": "UTC"}
        ),
        settings=DedupSettings(),
    )


def test_an_imported_report_and_an_api_report_of_the_same_instant_are_due_at_the_same_time(
    demo_db: Database, tmp_path: Path
) -> None:
    sla_hours = pothole_on_a_works_calendar(demo_db)
    imported_at, reported_at = quiet_point(demo_db, nth=0), quiet_point(demo_db, nth=1)
    import_a_pothole(demo_db, tmp_path, imported_at)
    tracking_id = report_a_pothole(demo_db, tmp_path, reported_at, now=FRIDAY_4PM)

    imported_due, api_due = _due_of(demo_db, "HIST-1"), _due_of(demo_db, tracking_id)
    assert imported_due == api_due
    # Counted in the depot's open hours (the weekend does not count), not on the wall clock.
    assert api_due > FRIDAY_4PM + timedelta(hours=sla_hours)
    assert api_due.astimezone(UTC).weekday() < 5
    assert 8 <= api_due.astimezone(UTC).hour <= 17


def test_due_times_counted_for_a_batch_are_the_ones_counted_one_by_one() -> None:
    # The importer counts a batch's due times at once; they must be the instants intake gives.
    calendar = sla.parse_calendar(
        timezone="America/New_York",
        hours={**WEEKDAYS_8_TO_5, "sat": [["09:00", "12:00"]]},
        holidays=["2026-03-09", "2026-11-26"],
    )
    rng = random.Random(5)
    start = datetime(2026, 3, 5, tzinfo=UTC)  # the days around a change to summer time
    opened = [start + timedelta(minutes=rng.randrange(0, 60 * 24 * 12)) for _ in range(400)]
    opened += opened[:50]  # day-only dates repeat instants
    opened.append(datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # in the hour that repeats
    opened.append(datetime(2026, 3, 8, 7, 30, tzinfo=ZoneInfo("America/New_York")))
    for sla_hours in (0.5, 12.0, 72.0):
        for cal in (calendar, None):
            terms = Terms(jurisdiction_id=1, code="c", group_code="g", sla_hours=sla_hours,
                          calendar=cal)  # fmt: skip
            one_by_one = [terms.due_times(at).due_at for at in opened]
            assert due_at_many(terms, opened) == one_by_one
    # The same refusals as one by one.
    with pytest.raises(ValueError, match="naive"):
        due_at_many(Terms(1, "c", "g", 12.0), [datetime(2026, 3, 5)])
    with pytest.raises(ValueError, match="positive"):
        due_at_many(Terms(1, "c", "g", 0.0), opened)
