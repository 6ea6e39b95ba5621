"""One rule for residents' contact details, in every staff view that carries them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from tests.support import (
    give_to_crew,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    staff_token,
    work_order_of,
)

EMAIL = "ana@example.org"
PHONE = "+15557654321"

# caller -> (GET staff/reports/{id}: status, contact shown?), (GET incidents/{id}/notices:
# status, recipients shown?). A crew reaches the requesters of its own crew's work through the
# report view; the notices view cannot tell whose work an incident is, so it shows a crew none.
EXPECTED = {
    "anonymous": ((401, False), (401, False)),
    "crew": ((200, True), (200, False)),
    "other crew": ((403, False), (200, False)),
    "dispatcher": ((200, True), (200, True)),
    "planner": ((403, False), (200, False)),
    "admin": ((200, True), (200, True)),
}


def test_contact_details_are_shown_to_the_same_roles_in_every_view(
    demo_db: Database, tmp_path: Path
) -> None:
    incident_id = open_incident_with_reporters(demo_db, [{"email": EMAIL}, {"phone": PHONE}])
    give_to_crew(demo_db, work_order_of(demo_db, incident_id), "streets")
    tokens = {
        "crew": staff_token(demo_db, "crew", "streets-1", crew="streets"),
        "other crew": staff_token(demo_db, "crew", "water-1", crew="water"),
    }
    with demo_db.session() as session:
        tracking_id = session.execute(
            text("SELECT tracking_id FROM reports WHERE incident_id = :i ORDER BY id LIMIT 1"),
            {"i": incident_id},
        ).scalar_one()
        # A mail server's refusal quotes the address; it is contact detail too.
        session.execute(
            text("UPDATE notices SET last_error = :e WHERE recipient = :r"),
            {"e": f"550 5.1.1 <{EMAIL}>: no such mailbox", "r": EMAIL},
        )
    found = {}
    with TestClient(pooled_app(notify_settings(tmp_path, 1), db=demo_db)) as client:
        for role in EXPECTED:
            headers = (
                {}
                if role == "anonymous"
                else {"Authorization": f"Bearer {tokens.get(role) or staff_token(demo_db, role)}"}
            )
            report = client.get(f"/api/v1/staff/reports/{tracking_id}", headers=headers)
            notices = client.get(f"/api/v1/incidents/{incident_id}/notices", headers=headers)
            shown_in_report = report.status_code == 200 and report.json()["contact"] == {
                "email": EMAIL,
                "phone": None,
                "language": "en",
            }
            recipients = (
                {n["recipient"] for n in notices.json()} if notices.status_code == 200 else set()
            )
            shown_in_notices = recipients == {EMAIL, PHONE}
            found[role] = (
                (report.status_code, shown_in_report),
                (notices.status_code, shown_in_notices),
            )
            if not shown_in_report:
                assert EMAIL not in report.text, role
            if not shown_in_notices:
                # Hidden everywhere in the answer, the server's error text included.
                assert EMAIL not in notices.text, role
                assert PHONE not in notices.text, role
                if notices.status_code == 200:
                    assert recipients == {None}
                    errors = {n["last_error"] for n in notices.json()} - {None}
                    assert errors == {"550 5.1.1 <[hidden]>: no such mailbox"}
    assert found == EXPECTED
