"""A crew's actions through the API as a tablet sends them: "can't do" puts the job back in the
dispatcher's queue with the reason, and an Idempotency-Key makes a sent-again action get the
first answer and change nothing again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import MediaSettings, Settings
from tests.support import (
    give_to_crew,
    jpeg,
    move_work_order,
    open_incident_with_reporters,
    pooled_app,
    staff_token,
    work_order_of,
)


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path, jurisdiction="demo", media=MediaSettings(max_bytes=2_000_000)
    )
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _job(db: Database, crew: str, *statuses: str) -> int:
    work_order_id = work_order_of(db, open_incident_with_reporters(db, []))
    move_work_order(db, work_order_id, "triaged", "assigned", *statuses)
    give_to_crew(db, work_order_id, crew)
    return work_order_id


def _version(client: TestClient, work_order_id: int, auth: dict[str, str]) -> int:
    r = client.get(f"/api/v1/work-orders/{work_order_id}", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["version"])


def _count(db: Database, sql: str, **params: Any) -> int:
    with db.session() as s:
        return int(s.execute(text(sql), params).scalar_one())


def test_cant_do_puts_the_job_in_the_dispatchers_queue_with_the_crews_reason(
    client: TestClient, demo_db: Database
) -> None:
    job = _job(demo_db, "streets", "in_progress")
    crew = {"Authorization": f"Bearer {staff_token(demo_db, 'crew', crew='streets')}"}
    dispatcher = {"Authorization": f"Bearer {staff_token(demo_db, 'dispatcher')}"}
    r = client.post(
        f"/api/v1/work-orders/{job}/cant-do",
        headers=crew,
        json={
            "reason": "no_access",
            "note": "Gate locked, no key",
            "expected_version": _version(client, job, crew),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "triaged"
    queue = client.get("/api/v1/dispatch/queue", headers=dispatcher).json()
    row = next(q for q in queue if q["work_order_id"] == job)
    assert row["reason"] == "crew_cant_do"
    assert row["detail"] == "no access to the site: Gate locked, no key"
    assert row["queued_by"] == "crew:crew-1"
    after = client.get(f"/api/v1/work-orders/{job}", headers=dispatcher).json()
    assert after["crew_id"] is None
    # The rules never take it back out of the queue on their own: a dispatcher decides.
    assert client.post("/api/v1/dispatch/queue/assign", headers=dispatcher).status_code == 200
    assert any(
        q["work_order_id"] == job
        for q in client.get("/api/v1/dispatch/queue", headers=dispatcher).json()
    )


def test_a_crew_cannot_give_back_another_crews_job_nor_with_an_unknown_reason(
    client: TestClient, demo_db: Database
) -> None:
    job = _job(demo_db, "forestry")
    crew = {"Authorization": f"Bearer {staff_token(demo_db, 'crew', crew='streets')}"}
    r = client.post(
        f"/api/v1/work-orders/{job}/cant-do",
        headers=crew,
        json={"reason": "no_access", "expected_version": _version(client, job, crew)},
    )
    assert r.status_code == 403, r.text
    assert "not your crew's work" in r.json()["detail"]
    own = _job(demo_db, "streets")
    r = client.post(
        f"/api/v1/work-orders/{own}/cant-do",
        headers=crew,
        json={"reason": "bored", "expected_version": _version(client, own, crew)},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "reason"
    queued = "SELECT count(*) FROM dispatch_queue WHERE work_order_id IN (:a, :b)"
    assert _count(demo_db, queued, a=job, b=own) == 0


def test_a_completion_sent_twice_with_one_key_lands_once_and_answers_the_same(
    client: TestClient, demo_db: Database
) -> None:
    job = _job(demo_db, "streets", "in_progress")
    crew = {"Authorization": f"Bearer {staff_token(demo_db, 'crew', crew='streets')}"}
    version = _version(client, job, crew)
    answers = []
    for _ in range(2):
        r = client.post(
            f"/api/v1/work-orders/{job}/complete",
            headers={**crew, "Idempotency-Key": "tablet-7f3a-0001"},
            files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
            data={"note": "Filled", "resolution_code": "repaired", "expected_version": version},
        )
        assert r.status_code == 200, r.text
        answers.append(r)
    assert answers[0].json() == answers[1].json()
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in answers[0].headers
    completions = (
        "SELECT count(*) FROM audit_events WHERE entity = 'work_order' AND entity_id = :w "
        "AND to_state = 'completed'"
    )
    assert _count(demo_db, completions, w=job) == 1
    assert (
        _count(
            demo_db,
            "SELECT count(*) FROM photos WHERE id IN "
            "(SELECT after_photo_id FROM work_orders WHERE id = :w)",
            w=job,
        )
        == 1
    )
    # The same key for another action is refused, and nothing changes.
    other = _job(demo_db, "streets")
    r = client.post(
        f"/api/v1/work-orders/{other}/transitions",
        headers={**crew, "Idempotency-Key": "tablet-7f3a-0001"},
        json={"to": "in_progress", "expected_version": _version(client, other, crew)},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["code"] == "key_reused"
    assert client.get(f"/api/v1/work-orders/{other}", headers=crew).json()["status"] == "assigned"


def test_a_refused_action_keeps_no_key_and_keys_are_per_user(
    client: TestClient, demo_db: Database
) -> None:
    job = _job(demo_db, "streets")
    crew = {"Authorization": f"Bearer {staff_token(demo_db, 'crew', crew='streets')}"}
    stale = {"to": "in_progress", "expected_version": _version(client, job, crew) - 1}
    key = {"Idempotency-Key": "k-1"}
    r = client.post(f"/api/v1/work-orders/{job}/transitions", headers={**crew, **key}, json=stale)
    assert r.status_code == 409, r.text
    assert _count(demo_db, "SELECT count(*) FROM idempotency_keys") == 0
    fresh = {"to": "in_progress", "expected_version": _version(client, job, crew)}
    r = client.post(f"/api/v1/work-orders/{job}/transitions", headers={**crew, **key}, json=fresh)
    assert r.status_code == 200, r.text
    # Another crew member's same key is theirs: it does not get this answer.
    mate = {"Authorization": f"Bearer {staff_token(demo_db, 'crew', 'crew-2', crew='streets')}"}
    r = client.post(
        f"/api/v1/work-orders/{job}/hold",
        headers={**mate, **key},
        json={"reason": "waiting for parts", "expected_version": _version(client, job, mate)},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "on_hold"
    r = client.post(
        f"/api/v1/work-orders/{job}/transitions",
        headers={**crew, "Idempotency-Key": "k" * 201},
        json=fresh,
    )
    assert r.status_code == 422, r.text
