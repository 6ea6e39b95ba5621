"""Moving many work orders in one set-based step (what storing a day plan does): the same
statuses, versions, audit trail and owed notices as one transition at a time, in a handful of
statements however many work orders move."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select, text

from geo311.kernel import live
from geo311.kernel.database import Database
from geo311.kernel.errors import NotFound
from geo311.kernel.notify import service as notify_service
from layers import service as layers_service
from tests.support import open_incident_with_reporters, work_order_of
from work_orders import transitions
from work_orders.errors import IllegalTransition
from work_orders.models import WorkOrder

ACTOR = "dispatcher:test"
DAY = {"scheduled_for": "2026-06-01"}


def _jid(db: Database) -> int:
    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
        return jurisdiction.id


def _open(db: Database, n: int, tag: str) -> list[int]:
    """Open ``n`` incidents, each reported by one resident by e-mail and one by SMS (who muted
    nothing) and one who muted "scheduled"; return their work orders."""
    out = []
    for k in range(n):
        incident = open_incident_with_reporters(
            db,
            [
                {"email": f"{tag}{k}@example.org", "language": "es"},
                {"phone": f"+1312555{k:04d}"},
                {"email": f"quiet-{tag}{k}@example.org"},
            ],
        )
        out.append(work_order_of(db, incident))
    jid = _jid(db)
    with db.session() as session:
        quiet = session.scalars(
            text("SELECT id FROM requesters WHERE email LIKE :p"), {"p": f"quiet-{tag}%"}
        ).all()
        for requester_id in quiet:
            notify_service.set_muted_kinds(
                session, jurisdiction_id=jid, requester_id=int(requester_id), muted=["scheduled"]
            )
    return out


@pytest.fixture
def webhook(demo_db: Database) -> None:
    with demo_db.session() as session:
        notify_service.create_webhook(
            session,
            jurisdiction_id=_jid(demo_db),
            url="http://127.0.0.1:9/hook",
            kinds=["scheduled", "closed"],
            description="bulk test",
            allow_private=True,
        )


def _schedule_many(
    db: Database, work_order_ids: list[int], *, crews: dict[int, int] | None = None
) -> None:
    with db.session() as session:
        transitions.transition_many(
            session,
            jurisdiction_id=_jid(db),
            work_order_ids=work_order_ids,
            steps=lambda w: ("assigned", "scheduled") if w.status == "new" else ("scheduled",),
            crews=crews,
            actor=ACTOR,
            notice_context=DAY,
        )


def _schedule_one_at_a_time(db: Database, work_order_ids: list[int]) -> None:
    with db.session() as session:
        for work_order_id in work_order_ids:
            order = session.get(WorkOrder, (_jid(db), work_order_id))
            assert order is not None
            transitions.transition(
                session, incident_or_work_order=order, to="assigned", actor=ACTOR
            )
            transitions.transition(
                session,
                incident_or_work_order=order,
                to="scheduled",
                actor=ACTOR,
                notice_context=DAY,
            )


def _what_it_left(db: Database, work_order_id: int) -> dict[str, Any]:
    """Everything a move leaves about one work order, with its own ids taken out."""
    with db.session() as session:
        w = session.execute(
            text(
                "SELECT w.status, w.version, w.due_at, w.at_risk_at, i.id AS incident, "
                "i.status AS incident_status, i.version AS incident_version, i.due_at AS i_due "
                "FROM work_orders w JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id "
                "AND i.id = w.incident_id WHERE w.id = :id"
            ),
            {"id": work_order_id},
        ).one()
        events = session.execute(
            text(
                "SELECT entity, action, actor, from_state, to_state, reason, public_note, data "
                "FROM audit_events WHERE action = 'transition' AND ((entity = 'work_order' "
                "AND entity_id = :wo) OR (entity = 'incident' AND entity_id = :inc)) ORDER BY id"
            ),
            {"wo": work_order_id, "inc": w.incident},
        ).all()
        notices = session.execute(
            text(
                "SELECT kind, channel, recipient, language, idempotency_key, context "
                "FROM notices WHERE incident_id = :inc AND kind <> 'received' ORDER BY id"
            ),
            {"inc": w.incident},
        ).all()
    ids = {str(w.incident): "INCIDENT"}

    def plain(value: str) -> str:
        for real, alias in ids.items():
            value = value.replace(f"incident-{real}", f"incident-{alias}")
        return value.split(":event-")[0] + (":requester" if ":requester-" in value else "")

    return {
        "work order": (w.status, w.version, w.due_at, w.at_risk_at),
        "incident": (w.incident_status, w.incident_version, w.i_due),
        "events": [tuple(e) for e in events],
        "notices": sorted(
            (
                n.kind,
                n.channel,
                n.recipient.split("@")[0].rstrip("0123456789"),
                n.language,
                plain(n.idempotency_key),
                sorted(k for k in n.context),
                n.context["scheduled_for"],
                n.context["status"],
            )
            for n in notices
        ),
    }


def test_moving_many_at_once_leaves_what_one_transition_at_a_time_leaves(
    demo_db: Database, webhook: None
) -> None:
    one_by_one = _open(demo_db, 2, "single")
    at_once = _open(demo_db, 2, "bulk")
    _schedule_one_at_a_time(demo_db, one_by_one)
    _schedule_many(demo_db, at_once)

    for single, bulk in zip(one_by_one, at_once, strict=True):
        left, right = _what_it_left(demo_db, single), _what_it_left(demo_db, bulk)
        assert right["work order"][:2] == ("scheduled", 3)
        assert right["incident"][:2] == ("scheduled", 3)
        # new → assigned → scheduled, each for the work order and its incident, in order.
        assert [(e[0], e[3], e[4]) for e in right["events"]] == [
            ("work_order", "new", "assigned"),
            ("incident", "new", "assigned"),
            ("work_order", "assigned", "scheduled"),
            ("incident", "assigned", "scheduled"),
        ]
        # The resident by e-mail, the one by SMS and the webhook hear of it; the one who
        # muted "scheduled" does not.
        assert [(n[0], n[1]) for n in right["notices"]] == [
            ("scheduled", "email"),
            ("scheduled", "sms"),
            ("scheduled", "webhook"),
        ]
        assert all(n[6] == "2026-06-01" for n in right["notices"])
        assert left["work order"][:2] == right["work order"][:2]
        assert left["incident"][:2] == right["incident"][:2]
        assert left["events"] == right["events"]
        assert [n[:2] + n[3:] for n in left["notices"]] == [n[:2] + n[3:] for n in right["notices"]]


def test_a_bulk_move_gives_the_crews_and_skips_work_already_there(demo_db: Database) -> None:
    first, second = _open(demo_db, 2, "skip")
    _schedule_many(demo_db, [first])
    before = _what_it_left(demo_db, first)
    with demo_db.session() as session:
        crew = int(session.execute(text("SELECT min(id) FROM crews")).scalar_one())
    with demo_db.session() as session:
        transitions.transition_many(
            session,
            jurisdiction_id=_jid(demo_db),
            work_order_ids=[first, second],
            steps=lambda w: () if w.status == "scheduled" else ("assigned",),
            crews={first: crew, second: crew},
            actor=ACTOR,
        )
    after = _what_it_left(demo_db, first)
    assert after["events"] == before["events"]  # nothing moved, nothing audited
    assert after["notices"] == before["notices"]
    with demo_db.session() as session:
        rows = dict(
            session.execute(
                select(WorkOrder.id, WorkOrder.crew_id).where(WorkOrder.id.in_([first, second]))
            ).all()
        )
    assert rows == {first: crew, second: crew}
    assert _what_it_left(demo_db, second)["work order"][:2] == ("assigned", 2)


def test_a_bulk_move_that_cannot_happen_for_one_work_order_names_it_and_changes_none(
    demo_db: Database,
) -> None:
    fine, finished = _open(demo_db, 2, "bad")
    with demo_db.session() as session:
        order = session.get(WorkOrder, (_jid(demo_db), finished))
        assert order is not None
        transitions.transition(
            session, incident_or_work_order=order, to="cancelled", actor=ACTOR, reason="dup"
        )
    before = {w: _what_it_left(demo_db, w) for w in (fine, finished)}
    with pytest.raises(IllegalTransition) as caught:
        _schedule_many(demo_db, [fine, finished])
    assert caught.value.detail.startswith(f"Work order {finished}: ")
    assert "'cancelled' cannot become 'scheduled'" in caught.value.detail
    assert caught.value.extra["work_order_id"] == finished
    assert caught.value.extra["allowed"] == ["reopened"]
    # The session rolled back: the work order that could move did not either.
    assert {w: _what_it_left(demo_db, w) for w in (fine, finished)} == before


@pytest.mark.parametrize("unknown", [10**12])
def test_a_bulk_move_of_an_unknown_work_order_is_not_found(demo_db: Database, unknown: int) -> None:
    (known,) = _open(demo_db, 1, "unknown")
    with pytest.raises(NotFound, match=str(unknown)):
        _schedule_many(demo_db, [known, unknown])
    assert _what_it_left(demo_db, known)["work order"][:2] == ("new", 1)


def test_a_bulk_move_costs_the_same_statements_for_2_or_12_work_orders(
    demo_db: Database, webhook: None
) -> None:
    few = _open(demo_db, 2, "few")
    many = _open(demo_db, 12, "many")
    with demo_db.session() as session:
        crew = int(session.execute(text("SELECT min(id) FROM crews")).scalar_one())
    counts = []
    for batch in (few, many):
        statements: list[str] = []

        def count(*args: Any, into: list[str] = statements) -> None:
            into.append(" ".join(str(args[2]).split()[:3]))

        # Every other one gets a crew: rows that differ in what changes still go in one batch.
        crews = {w: crew for w in batch[::2]}
        event.listen(demo_db.engine, "before_cursor_execute", count)
        try:
            _schedule_many(demo_db, batch, crews=crews)
        finally:
            event.remove(demo_db.engine, "before_cursor_execute", count)
        counts.append(len(statements))
        assert [_what_it_left(demo_db, w)["work order"][:2] for w in batch] == [
            ("scheduled", 3)
        ] * len(batch)
        with demo_db.session() as session:
            given = dict(
                session.execute(
                    select(WorkOrder.id, WorkOrder.crew_id).where(WorkOrder.id.in_(batch))
                ).all()
            )
        assert given == {w: crews.get(w) for w in batch}
    # The jurisdiction, the lock, one INSERT of the audit events (and one of the changes the
    # planner's summaries are yet to take in), one UPDATE each (sent as one batch) of the
    # incidents and the work orders, the notices' contexts, recipients and webhooks, the
    # outbox, and the live events' pg_notify at COMMIT: the same for 12 work orders as for 2.
    assert counts[0] == counts[1], statements
    assert counts[1] <= 11, statements


def test_open_pages_hear_of_every_work_order_a_bulk_move_moves(demo_db: Database) -> None:
    batch = _open(demo_db, 3, "live")
    conninfo = demo_db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {live.CHANNEL}")
        _schedule_many(demo_db, batch)
        events: list[live.LiveEvent] = []
        for note in listener.notifies(timeout=5, stop_after=1):
            events.extend(live.parse(note.payload))
    heard = [(e.data["id"], e.data["status"]) for e in events if e.kind == "work_order"]
    assert heard == [(w, s) for w in sorted(batch) for s in ("assigned", "scheduled")]
    incidents = {e.data["id"] for e in events if e.kind == "incident"}
    assert len(incidents) == 3
