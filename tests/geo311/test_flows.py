"""Use cases as flows: the resident domains never assign work; the flow calls dispatch after.

No app is built in these tests: what a report sets off no longer depends on whether some
earlier code in the process installed a hook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from geo311.flows import submit_report
from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import IntakeSettings, MediaSettings
from geo311.resident.intake import service as intake_service
from tests.geo311.dedup_support import jurisdiction_id, one, quiet_point, rows


def _draft(lon: float, lat: float) -> intake_service.ReportDraft:
    form: dict[str, str | None] = {"category": "pothole", "lon": str(lon), "lat": str(lat)}
    return intake_service.parse_report_form(form, channel="api", settings=IntakeSettings())


def _history(db: Database, tracking_id: str) -> list[tuple[str, str | None]]:
    """Return the incident's and its work order's audit events (action, to_state), in order."""
    return [
        (r.action, r.to_state)
        for r in rows(
            db,
            """
            SELECT e.action, e.to_state FROM audit_events e
            JOIN reports r ON r.tracking_id = :t
            LEFT JOIN work_orders w
                   ON w.jurisdiction_id = r.jurisdiction_id AND w.incident_id = r.incident_id
            WHERE e.jurisdiction_id = r.jurisdiction_id
              AND ((e.entity = 'incident' AND e.entity_id = r.incident_id)
                   OR (e.entity = 'work_order' AND e.entity_id = w.id))
            ORDER BY e.id
            """,
            t=tracking_id,
        )
    ]


def test_intake_alone_opens_the_incident_and_the_report_flow_then_gives_it_a_crew(
    demo_db: Database, tmp_path: Path
) -> None:
    media = LocalMediaStore(tmp_path)
    first, second = quiet_point(demo_db, nth=0), quiet_point(demo_db, nth=1)
    now = datetime.now(UTC)
    with demo_db.sessions() as session:
        alone = intake_service.submit_report(
            session,
            jurisdiction_id=jurisdiction_id(demo_db),
            jurisdiction_slug="demo",
            draft=_draft(*first),
            photo=None,
            media=media,
            media_settings=MediaSettings(),
            now=now,
        )
        assert alone.opened is not None
        alone_id = alone.report.tracking_id
        flowed = submit_report.submit(
            session,
            jurisdiction_id=jurisdiction_id(demo_db),
            jurisdiction_slug="demo",
            draft=_draft(*second),
            photo=None,
            media=media,
            media_settings=MediaSettings(),
            now=now,
        )
        flowed_id = flowed.report.tracking_id
        session.commit()

    status_sql = (
        "SELECT w.status || ':' || COALESCE(w.crew_id::text, '-') FROM work_orders w "
        "JOIN reports r ON r.jurisdiction_id = w.jurisdiction_id AND r.incident_id = w.incident_id "
        "WHERE r.tracking_id = :t"
    )
    # Intake knows no dispatch: the work order waits, new and on no crew.
    assert one(demo_db, status_sql, t=alone_id) == "new:-"
    assert ("transition", "assigned") not in _history(demo_db, alone_id)
    # The flow: opened first, then given to the crew the rules chose.
    assert str(one(demo_db, status_sql, t=flowed_id)).startswith("assigned:")
    assert one(demo_db, status_sql, t=flowed_id) != "assigned:-"
    history = _history(demo_db, flowed_id)
    assert history.index(("opened", "new")) < history.index(("transition", "assigned"))
