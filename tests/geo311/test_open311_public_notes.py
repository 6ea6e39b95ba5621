"""Staff words never reach the public: a crew's completion note, a reason code on a hold, a
dispatcher's merge, split and undo reasons (and the reopen an undone split causes) stay in
the audit trail; Open311 requests, servicerequestupdates and the public report view show
only the wording chosen for the public."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from geo311.kernel.auth import service as auth_service
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.geo311.dedup_support import execute, offset, one, quiet_point, rows
from tests.geo311.open311_helpers import BASE, client, close_incident, settings
from work_orders import transitions
from work_orders.models import WorkOrder

__all__ = ["client", "settings"]  # fixtures used by name below


def _report(client: TestClient, lon: float, lat: float) -> str:
    resp = client.post(
        "/api/v1/reports", data={"category": "pothole", "lat": str(lat), "lon": str(lon)}
    )
    assert resp.status_code == 201, resp.text
    tracking_id: str = resp.json()["tracking_id"]
    return tracking_id


def _dispatcher(db: Database) -> dict[str, str]:
    with db.session() as s:
        token = auth_service.create_token(s, name="dana", role="dispatcher")
    return {"Authorization": f"Bearer {token}"}


def _incident_of(db: Database, tracking_id: str) -> int:
    return int(one(db, "SELECT incident_id FROM reports WHERE tracking_id = :t", t=tracking_id))


def _public_views(client: TestClient, tracking_ids: list[str]) -> str:
    """Return every public view of the requests, one text: Open311 (both formats, with
    extensions: notes and history), the update feed, and the public report view."""
    window = {
        "start_date": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "end_date": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    }
    bodies = []
    for fmt in ("xml", "json"):
        for tracking_id in tracking_ids:
            bodies.append(client.get(f"{BASE}/requests/{tracking_id}.{fmt}"))
        bodies.append(
            client.get(
                f"{BASE}/requests.{fmt}",
                params={"service_request_id": ",".join(tracking_ids), "extensions": "true"},
            )
        )
        bodies.append(client.get(f"{BASE}/servicerequestupdates.{fmt}", params=window))
    bodies += [client.get(f"/api/v1/reports/{t}") for t in tracking_ids]
    assert all(b.status_code == 200 for b in bodies), [b.text for b in bodies]
    return "\n".join(b.text for b in bodies)


def _updates(client: TestClient, tracking_id: str) -> list[tuple[str, str]]:
    body = client.get(
        f"{BASE}/servicerequestupdates.json", params={"service_request_id": tracking_id}
    ).json()
    return [(u["external_status_code"], u["description"]) for u in body]


def test_a_completion_note_and_a_hold_reason_code_stay_with_staff(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    tracking_id = _report(client, *quiet_point(demo_db))
    with demo_db.session() as session:
        order = session.scalar(
            select(WorkOrder).where(WorkOrder.incident_id == _incident_of(demo_db, tracking_id))
        )
        assert order is not None
        transitions.hold(session, work_order=order, reason="no_skill", actor="crew:7")
        transitions.resume(session, work_order=order, actor="crew:7", reason="no_skill")
    close_incident(
        demo_db,
        tracking_id,
        note="Ballast burnt out, told Joe to order more",
        resolution_code="temporary_fix",
        media_root=settings.data_dir / "media",
    )
    public = _public_views(client, [tracking_id])
    for staff_words in ("no_skill", "Ballast", "Joe"):
        assert staff_words not in public
    assert _updates(client, tracking_id)[-4:] == [
        ("on_hold", "On hold"),
        ("assigned", "Assigned to a crew"),
        ("completed", "Resolved: temporarily fixed."),
        ("closed", "Resolved: temporarily fixed."),
    ]
    request = client.get(f"{BASE}/requests/{tracking_id}.json").json()[0]
    assert request["status_notes"] == "Resolved: temporarily fixed."
    # Staff still have the words, in the audit trail.
    reasons = rows(
        demo_db,
        "SELECT reason FROM audit_events WHERE entity = 'incident' AND entity_id = :i "
        "AND reason IS NOT NULL ORDER BY id",
        i=_incident_of(demo_db, tracking_id),
    )
    assert [r.reason for r in reasons] == [
        "no_skill",
        "no_skill",
        "Ballast burnt out, told Joe to order more",
        "Ballast burnt out, told Joe to order more",
    ]


def test_a_merge_and_its_undo_show_chosen_words_not_the_dispatchers(
    client: TestClient, demo_db: Database
) -> None:
    dispatcher = _dispatcher(demo_db)
    lon, lat = quiet_point(demo_db)
    a = _report(client, lon, lat)
    b = _report(client, *offset(lon, lat, 60.0))
    ia, ib = _incident_of(demo_db, a), _incident_of(demo_db, b)
    assert ia != ib
    merged = client.post(
        f"/api/v1/staff/incidents/{ia}/merge",
        json={"source_incident_id": ib, "reason": "Same hole, Dana checked it with Ray"},
        headers=dispatcher,
    )
    assert merged.status_code == 201, merged.text
    assert "Dana" not in _public_views(client, [a, b])

    undone = client.post(
        f"/api/v1/staff/moves/{merged.json()['id']}/undo",
        json={"reason": "Ray says two holes after all"},
        headers=dispatcher,
    )
    assert undone.status_code == 200, undone.text
    public = _public_views(client, [a, b])
    for staff_words in ("Dana", "Ray", "merged into incident", f"incident {ia}"):
        assert staff_words not in public
    # B's request hears what happened to it, naming requests (public), not incidents.
    assert _updates(client, b)[-2:] == [
        ("cancelled", f"This problem was already reported as {a}: follow that request."),
        ("assigned", "No longer linked to another request: this one is followed on its own."),
    ]
    assert _updates(client, a)[-1] == (
        "assigned",
        "Reports of a different problem were separated from this request.",
    )


def test_a_split_that_closes_again_and_its_undo_that_reopens_show_chosen_words(
    client: TestClient, demo_db: Database
) -> None:
    dispatcher = _dispatcher(demo_db)
    lon, lat = quiet_point(demo_db)
    first = _report(client, lon, lat)
    incident_id = _incident_of(demo_db, first)
    execute(
        demo_db,
        "WITH w AS (UPDATE work_orders SET status = 'completed' WHERE incident_id = :i) "
        "UPDATE incidents SET status = 'closed', closed_at = now() - interval '1 day' "
        "WHERE id = :i",
        i=incident_id,
    )
    again = _report(client, *offset(lon, lat, 3.0))
    assert _updates(client, first)[-1] == (
        "reopened",
        "Reopened: the problem was reported again.",
    )
    split = client.post(
        f"/api/v1/staff/reports/{again}/split",
        json={"reason": "Kim: a new hole, not the fixed one"},
        headers=dispatcher,
    )
    assert split.status_code == 201, split.text
    undo = client.post(
        f"/api/v1/staff/moves/{split.json()['id']}/undo",
        json={"reason": "Kim was wrong, same hole"},
        headers=dispatcher,
    )
    assert undo.status_code == 200, undo.text

    public = _public_views(client, [first, again])
    # Neither the dispatcher's words, nor dedup's own (distances, incident numbers).
    for staff_words in ("Kim", "m away", "split from incident", f"incident {incident_id}"):
        assert staff_words not in public
    assert _updates(client, first)[-3:] == [
        ("reopened", "Reopened: the problem was reported again."),
        ("closed", "Closed again: the report that reopened it was about a different problem."),
        ("reopened", "Reopened: a report of this problem was linked to it again."),
    ]
    request = client.get(f"{BASE}/requests/{first}.json").json()[0]
    assert request["status_notes"] == "Reopened: a report of this problem was linked to it again."
