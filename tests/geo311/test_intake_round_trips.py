"""Round trips of one report at intake, counted on the wire: the driver's cursor counts every
statement sent (the ORM's and the job queue's alike), so a new query anywhere on the path
shows up here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, text

from geo311.flows import submit_report
from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.settings import IntakeSettings, MediaSettings
from geo311.resident.intake import service as intake_service
from tests.geo311.dedup_support import jurisdiction_id, one, quiet_point
from tests.support import jpeg

# Statements sent for one report with an e-mail and a photo, from the category read to the
# commit. Before the rework: 37 to open an incident (17 of them assigning its work order after
# it was written), 14 to join one; then 14 and 13. The target is 8 for both. What is
# left: the resolve (category, calendar, webhooks, dedup's fitted model, ward, asset and the
# new rows' ids, in one), the area lock, the candidate search (two statements: a search in
# the statement that waited for the lock would read a snapshot from before the wait), then
# the crews' load (open) or the chosen incident's row lock (join), the one write (every row:
# incident, work order, audit, requester, report, subscription, photo, notices owed), the
# notices' delivery job, and, for a join, the one pg_notify that tells open staff pages of
# the change at COMMIT (geo311.kernel.live).
MAX_TO_OPEN = 6
MAX_TO_JOIN = 7


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """Yield the list of statements sent on connections checked out meanwhile."""
    sent: list[str] = []

    class Counting(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(" ".join(str(query).split())[:120])
            return super().execute(query, *args, **kwargs)

        def executemany(self, query: Any, *args: Any, **kwargs: Any) -> None:
            sent.append("MANY " + " ".join(str(query).split())[:115])
            super().executemany(query, *args, **kwargs)

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        dbapi_connection.cursor_factory = Counting

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.cursor_factory = psycopg.Cursor

    event.listen(db.engine, "checkout", on_checkout)
    event.listen(db.engine, "checkin", on_checkin)
    try:
        yield sent
    finally:
        event.remove(db.engine, "checkout", on_checkout)
        event.remove(db.engine, "checkin", on_checkin)


def _submit(db: Database, tmp_path: Path, lon: float, lat: float, email: str) -> list[str]:
    form: dict[str, str | None] = {
        "category": "pothole",
        "lon": str(lon),
        "lat": str(lat),
        "email": email,
        "description": "deep hole by the kerb",
    }
    draft = intake_service.parse_report_form(form, channel="api", settings=IntakeSettings())
    media_settings = MediaSettings()
    photo = submit_report.decode_photo(jpeg(), media_settings)
    jid = jurisdiction_id(db)
    with counted(db) as sent, db.sessions() as session:
        submit_report.submit(
            session,
            jurisdiction_id=jid,
            jurisdiction_slug="demo",
            draft=draft,
            photo=photo,
            media=LocalMediaStore(tmp_path),
            media_settings=media_settings,
            now=datetime.now(UTC),
        )
        session.commit()
    return sent


def test_a_report_that_opens_an_incident_and_gives_it_a_crew_in_few_round_trips(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    # Warm the process-wide caches (crews, rules) the way a running server has them.
    _submit(demo_db, tmp_path, *quiet_point(demo_db, nth=1), email="warm@example.org")

    sent = _submit(demo_db, tmp_path, lon, lat, email="first@example.org")

    assert len(sent) <= MAX_TO_OPEN, "\n".join(sent)
    # What the resident notices: the work is on a crew's list, and they are told it arrived.
    status = one(
        demo_db,
        "SELECT w.status || ':' || (w.crew_id IS NOT NULL) FROM reports r "
        "JOIN work_orders w ON w.jurisdiction_id = r.jurisdiction_id "
        "AND w.incident_id = r.incident_id JOIN requesters q ON q.id = r.requester_id "
        "WHERE q.email = 'first@example.org'",
    )
    assert status == "assigned:true"
    assert (
        one(
            demo_db,
            "SELECT count(*) FROM notices "
            "WHERE recipient = 'first@example.org' AND kind = 'received'",
        )
        == 1
    )


def test_a_report_that_joins_an_incident_in_few_round_trips(
    demo_db: Database, tmp_path: Path
) -> None:
    lon, lat = quiet_point(demo_db)
    _submit(demo_db, tmp_path, lon, lat, email="first@example.org")

    sent = _submit(demo_db, tmp_path, lon, lat, email="second@example.org")

    assert len(sent) <= MAX_TO_JOIN, "\n".join(sent)
    assert (
        one(
            demo_db,
            "SELECT count(DISTINCT incident_id) FROM reports r JOIN requesters q "
            "ON q.id = r.requester_id WHERE q.email IN ('first@example.org', 'second@example.org')",
        )
        == 1
    )
    assert (
        one(
            demo_db,
            "SELECT count(*) FROM notices "
            "WHERE recipient = 'second@example.org' AND kind = 'received'",
        )
        == 1
    )


def test_the_asset_snap_reads_only_the_assets_near_the_report(demo_db: Database) -> None:
    """The resolve statement's asset snap is served by the assets' geography index (KNN order
    and radius cut-off), rather than measuring every asset of the type on each report."""
    jid = jurisdiction_id(demo_db)
    with demo_db.session() as session:
        asset_type, lon, lat, of_type = session.execute(
            text(
                "SELECT a.asset_type, ST_X(a.geom), ST_Y(a.geom), "
                "(SELECT count(*) FROM assets x WHERE x.jurisdiction_id = :jid "
                "AND x.asset_type = a.asset_type) "
                "FROM assets a JOIN service_categories c ON c.jurisdiction_id = a.jurisdiction_id "
                "AND c.asset_type = a.asset_type "
                "WHERE a.jurisdiction_id = :jid AND c.code = 'streetlight_out' "
                "ORDER BY a.id LIMIT 1"
            ),
            {"jid": jid},
        ).one()
    assert of_type > 100  # enough assets that reading them all would show
    compiled = intake_service._resolve_statement(placed=True, contact=False).compile(
        dialect=demo_db.engine.dialect
    )
    params = {
        **compiled.params,
        "jid": jid,
        "code": "streetlight_out",
        "lon": lon + 0.00005,
        "lat": lat,
        "at": datetime.now(UTC),
    }
    with demo_db.engine.connect() as conn:
        (plan,) = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiled), params
        ).one()
        conn.rollback()  # the resolve draws ids; nothing else is kept

    read = [
        node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        for node in _nodes(plan)
        if re.fullmatch(r"assets(_\d+)?", str(node.get("Relation Name")))  # Citus: a shard
    ]
    assert read, plan
    assert sum(read) <= 3, (asset_type, read)


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Yield every plan node, those Citus ran on a worker included (under its custom scan's
    "Distributed Query": the task's "Remote Plan")."""
    if isinstance(plan, list):
        for item in plan:
            yield from _nodes(item)
    elif isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            yield from _nodes(value)
