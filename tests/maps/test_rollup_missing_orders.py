"""The planner's ward table stays exact when work orders are made for bulk-loaded incidents
(``work_orders.incidents.create_missing_work_orders``): the incidents are noted for the
summaries, so nothing waits for the next refresh to be right."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from geo311.kernel.database import Database
from tests.maps import history
from tests.maps.test_analytics_rollup import _table, assert_same_answer, refresh, stale
from work_orders import changes, incidents


def test_work_orders_made_for_loaded_incidents_keep_the_ward_table_exact(
    db: Database,
) -> None:
    city = history.build(db)
    # January's incidents lose their work orders, as if they had been bulk-loaded without
    # them; the summaries take that in.
    january = [city.incidents[k] for k in ("P1", "P2", "P3", "T1", "P4", "T2", "T3", "T4", "P5")]
    with db.session() as session:
        session.execute(
            text("DELETE FROM work_orders WHERE jurisdiction_id = :j AND incident_id = ANY(:ids)"),
            {"j": city.jid, "ids": january},
        )
        changes.note(session, jurisdiction_id=city.jid, entity="incident", entity_ids=january)
    refresh(db, city.jid)
    first, last = date(2026, 1, 1), date(2026, 1, 31)
    without = _table(db, city.jid, first, last, None, summaries=True)

    with db.session() as session:
        made = incidents.create_missing_work_orders(session, jurisdiction_id=city.jid)
    assert made == len(january)
    # The SLA figures come back with the work orders: January reads differently now...
    after = _table(db, city.jid, first, last, None, summaries=True)
    assert after != without
    a1 = dict((code, fig) for code, fig, _ in after[0])["A1"]
    assert a1.sla_breach_share > 0
    # ...and the summaries give, before any refresh, what the source tables give.
    assert stale(db, city.jid, first, last) != []
    assert_same_answer(db, city.jid)
