"""Intake keeps the terms it built from a category (its SLA, business calendar, name) between
reports, in the process: a change to the category, its calendar or its being active is seen
by the very next report, without a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from geo311.kernel.database import Database
from geo311.resident.intake import service as intake_service
from tests.geo311.dedup_support import (
    execute,
    jurisdiction_id,
    one,
    quiet_point,
    report_a_pothole,
)
from work_orders import sla

# Weekdays 08:00–16:00 in the city's time zone.
_HOURS = {day: [["08:00", "16:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def _report(db: Database, tmp_path: Path, *, nth: int, email: str) -> None:
    report_a_pothole(db, tmp_path, quiet_point(db, nth=nth), now=datetime.now(UTC), email=email)


def _opened_and_due(db: Database, email: str) -> tuple[datetime, datetime]:
    row = one(
        db,
        "SELECT json_build_array(w.opened_at, w.due_at) FROM reports r "
        "JOIN requesters q ON q.jurisdiction_id = r.jurisdiction_id AND q.id = r.requester_id "
        "JOIN work_orders w ON w.jurisdiction_id = r.jurisdiction_id "
        "AND w.incident_id = r.incident_id WHERE q.email = :email",
        email=email,
    )
    opened, due = (datetime.fromisoformat(v) for v in row)
    return opened, due


def _notice_category_name(db: Database, email: str) -> str:
    return str(
        one(
            db,
            "SELECT context->>'category' FROM notices "
            "WHERE recipient = :email AND kind = 'received'",
            email=email,
        )
    )


def test_a_change_to_the_category_and_its_calendar_is_seen_by_the_next_report(
    demo_db: Database, tmp_path: Path
) -> None:
    jid = jurisdiction_id(demo_db)
    sla_h = float(one(demo_db, "SELECT sla_hours FROM service_categories WHERE code = 'pothole'"))
    _report(demo_db, tmp_path, nth=0, email="before@example.org")
    opened, due = _opened_and_due(demo_db, "before@example.org")
    assert due - opened == timedelta(hours=sla_h)

    # A city worker renames the category, halves its SLA and counts it in office hours.
    zone = str(one(demo_db, "SELECT timezone FROM jurisdictions WHERE id = :jid", jid=jid))
    execute(
        demo_db,
        "INSERT INTO business_calendars (jurisdiction_id, code, name, timezone, hours) "
        "VALUES (:jid, 'office', 'Office hours', :zone, CAST(:hours AS jsonb))",
        jid=jid,
        zone=zone,
        hours=json.dumps(_HOURS),
    )
    execute(
        demo_db,
        "UPDATE service_categories SET sla_hours = :h, calendar_code = 'office', "
        "name = 'Pothole or sunken road' WHERE jurisdiction_id = :jid AND code = 'pothole'",
        h=sla_h / 2,
        jid=jid,
    )
    _report(demo_db, tmp_path, nth=1, email="after@example.org")

    opened, due = _opened_and_due(demo_db, "after@example.org")
    office = sla.parse_calendar(timezone=zone, hours=_HOURS)
    assert due == sla.due_times(opened, sla_h / 2, office).due_at
    assert due - opened != timedelta(hours=sla_h / 2), "counted in wall-clock hours"
    assert _notice_category_name(demo_db, "before@example.org") != "Pothole or sunken road"
    assert _notice_category_name(demo_db, "after@example.org") == "Pothole or sunken road"

    # The calendar itself changes (open on weekends too): the next report counts in it.
    weekends = {**_HOURS, "sat": [["00:00", "24:00"]], "sun": [["00:00", "24:00"]]}
    execute(
        demo_db,
        "UPDATE business_calendars SET hours = CAST(:hours AS jsonb) "
        "WHERE jurisdiction_id = :jid AND code = 'office'",
        hours=json.dumps(weekends),
        jid=jid,
    )
    _report(demo_db, tmp_path, nth=2, email="weekend@example.org")
    opened, due = _opened_and_due(demo_db, "weekend@example.org")
    assert (
        due
        == sla.due_times(
            opened, sla_h / 2, sla.parse_calendar(timezone=zone, hours=weekends)
        ).due_at
    )


def test_a_category_switched_off_is_refused_by_the_next_report(
    demo_db: Database, tmp_path: Path
) -> None:
    _report(demo_db, tmp_path, nth=0, email="before@example.org")
    execute(demo_db, "UPDATE service_categories SET active = false WHERE code = 'pothole'")

    with pytest.raises(intake_service.UnknownCategory):
        _report(demo_db, tmp_path, nth=1, email="after@example.org")
    assert one(demo_db, "SELECT count(*) FROM requesters WHERE email = 'after@example.org'") == 0
