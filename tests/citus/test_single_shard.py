"""On Citus every hot path is single-shard: each statement the app sends while a resident
reports, a crew works a job, a dispatcher plans a day, an Open311 client reads, or a planner
opens the ward table is planned by the coordinator as one task on one shard (or runs on the
coordinator alone) — never as a query fanned out over every shard."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings
from tests.citus.plans import assert_single_shard, recording
from tests.support import (
    Caught,
    SmtpSink,
    give_to_crew,
    jpeg,
    notice_rows,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    staff_token,
    wait_until,
    ward_point,
    work_order_of,
)

DAY = "2026-06-01"  # the Monday of the demo city's "now"


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    routing = RoutingSettings(time_limit_s=1.0, replan_time_limit_s=0.5)
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", routing=routing)
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def _auth(db: Database, role: str, crew: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(db, role, crew=crew)}"}


def test_the_cluster_spreads_the_tenant_tables_and_keeps_them_together(demo_db: Database) -> None:
    with demo_db.session() as s:
        kinds: dict[str, str] = dict(
            s.execute(text("SELECT table_name::text, citus_table_type FROM citus_tables")).all()
        )
        groups = s.execute(
            text(
                "SELECT count(DISTINCT colocation_id) FROM citus_tables "
                "WHERE citus_table_type = 'distributed'"
            )
        ).scalar_one()
        workers = s.execute(
            text(
                "SELECT count(DISTINCT nodename) FROM citus_shards "
                "WHERE table_name = 'incidents'::regclass"
            )
        ).scalar_one()
    assert kinds["incidents"] == kinds["reports"] == kinds["notices"] == "distributed"
    assert kinds["jurisdictions"] == kinds["staff_users"] == "reference"
    assert groups == 1  # every tenant table co-located with every other
    assert workers == 2


def test_intake_with_dedup_runs_on_one_shard(client: TestClient, demo_db: Database) -> None:
    lon, lat = ward_point(demo_db)
    staff = _auth(demo_db, "dispatcher")
    with recording(demo_db) as rec:
        first = client.post("/api/v1/reports", data={"category": "pothole", "lat": lat, "lon": lon})
        second = client.post(
            "/api/v1/reports",
            data={"category": "pothole", "lat": lat, "lon": lon + 0.00005},
            files={"photo": ("p.jpg", jpeg(), "image/jpeg")},
        )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    incidents = {
        client.get(f"/api/v1/staff/reports/{r.json()['tracking_id']}", headers=staff).json()[
            "incident_id"
        ]
        for r in (first, second)
    }
    assert len(incidents) == 1  # the second report joined the first one's incident
    assert any("pg_advisory_xact_lock" in s for s, _ in rec.statements)
    assert_single_shard(rec, must_touch={"reports", "incidents", "work_orders", "photos"})


def test_a_work_orders_lifecycle_runs_on_one_shard(client: TestClient, demo_db: Database) -> None:
    work_order_id = work_order_of(demo_db, open_incident_with_reporters(demo_db, []))
    dispatcher = _auth(demo_db, "dispatcher")
    crew = _auth(demo_db, "crew", crew="streets")
    url = f"/api/v1/work-orders/{work_order_id}"
    give_to_crew(demo_db, work_order_id, "streets")
    with recording(demo_db) as rec:
        for status in ("triaged", "assigned"):
            seen = client.get(url, headers=dispatcher)
            r = client.post(
                f"{url}/transitions",
                json={"to": status},
                headers={**dispatcher, "If-Match": seen.headers["ETag"]},
            )
            assert r.status_code == 200, r.text
        seen = client.get(url, headers=crew)
        r = client.post(
            f"{url}/transitions",
            json={"to": "in_progress"},
            headers={**crew, "If-Match": seen.headers["ETag"]},
        )
        assert r.status_code == 200, r.text
        seen = client.get(url, headers=crew)
        done = client.post(
            f"{url}/complete",
            files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
            data={"note": "Patched", "resolution_code": "repaired"},
            headers={**crew, "If-Match": seen.headers["ETag"]},
        )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert_single_shard(rec, must_touch={"work_orders", "incidents", "audit_events", "photos"})


def test_a_day_plan_runs_on_one_shard(client: TestClient, demo_db: Database) -> None:
    dispatcher = _auth(demo_db, "dispatcher")
    crew = _auth(demo_db, "crew", crew="streets")
    with recording(demo_db) as rec:
        r = client.post(f"/api/v1/plans?date={DAY}", headers=dispatcher)
        assert r.status_code == 200, r.text
        mine = client.get(f"/api/v1/plans/{DAY}/crews/streets", headers=crew)
    assert mine.status_code == 200, mine.text
    assert any(route["stops"] for route in r.json()["routes"])
    assert_single_shard(rec, must_touch={"day_plans", "plan_routes", "plan_stops", "crews"})


def test_an_open311_read_runs_on_one_shard(client: TestClient, demo_db: Database) -> None:
    with recording(demo_db) as rec:
        services = client.get("/open311/v2/services.json")
        listed = client.get(
            "/open311/v2/requests.json",
            params={"start_date": "2026-05-01T00:00:00Z", "end_date": "2026-06-01T12:00:00Z"},
        )
        one = client.get(f"/open311/v2/requests/{listed.json()[0]['service_request_id']}.json")
    assert services.status_code == listed.status_code == one.status_code == 200
    assert listed.json()
    assert one.json()[0]["service_request_id"] == listed.json()[0]["service_request_id"]
    assert_single_shard(rec, must_touch={"reports", "service_categories"})


def test_the_planners_ward_table_runs_on_one_shard(client: TestClient, demo_db: Database) -> None:
    planner = _auth(demo_db, "planner")
    with recording(demo_db) as rec:
        r = client.get(
            "/api/v1/analytics/wards",
            params={"from": "2026-05-01", "to": "2026-05-31"},
            headers=planner,
        )
    assert r.status_code == 200, r.text
    assert r.json()["wards"]
    assert_single_shard(rec, must_touch={"incidents", "wards"})


def test_the_planners_summaries_run_on_one_shard(client: TestClient, demo_db: Database) -> None:
    """The planner's ward table and weekly trends before the summaries are built (counted from
    the source tables, or day by day), the worker's refresh of the summaries (day, month and
    time-to-close tables), the same reads through them (whole months from the month
    summaries), and a period whose last day a new report made stale (counted afresh): every
    statement on one shard. The planner sees the same figures before and after the refresh."""
    from geo311.flows.analytics import refresh_all

    planner = _auth(demo_db, "planner")
    # The demo city's history runs from 2 May 2026 to its "now", 1 June.
    asked: list[tuple[str, dict[str, str]]] = [
        ("wards", {"from": "2026-05-02", "to": "2026-11-30"}),  # seven months
        ("wards", {"from": "2026-06-01", "to": "2026-06-30"}),  # a whole month
        ("wards", {"from": "2026-05-02", "to": "2026-06-30", "category": "pothole"}),
        ("trends", {"from": "2026-05-02", "to": "2026-06-30"}),
    ]

    def read() -> list[Any]:
        answers = [
            client.get(f"/api/v1/analytics/{what}", params=p, headers=planner) for what, p in asked
        ]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return [r.json() for r in answers]

    with recording(demo_db) as unbuilt:
        before = read()
    ward = max(before[0]["wards"], key=lambda w: w["incidents"])
    assert ward["incidents"] > 0
    asked.append(("trends", {"from": "2026-05-02", "to": "2026-06-30", "ward": ward["code"]}))
    before.append(read()[-1])
    with recording(demo_db) as refreshing:
        done = refresh_all(demo_db)
    assert done["days"] >= 30  # every day from the first report on
    with recording(demo_db) as reading:
        after = read()
    assert after == before
    months = [p.get("months") for s, p in reading.statements if "analytics_month_counts" in s]
    assert any(months), "no whole month was read from the month summaries"

    # A new report today: its day is stale until the next refresh, and is counted afresh
    # beside the whole months read from their summaries and this month's built days.
    lon, lat = ward_point(demo_db)
    filed = client.post("/api/v1/reports", data={"category": "pothole", "lat": lat, "lon": lon})
    assert filed.status_code == 201, filed.text
    today = date.today()
    recent = {"from": str((today.replace(day=1) - timedelta(days=40)).replace(day=1)),
              "to": str(today)}  # fmt: skip
    with recording(demo_db) as stale:
        now = client.get("/api/v1/analytics/wards", params=recent, headers=planner)
        weekly = client.get("/api/v1/analytics/trends", params=recent, headers=planner)
    assert now.status_code == weekly.status_code == 200, (now.text, weekly.text)
    assert now.json()["city"]["reports"] >= 1
    assert_single_shard(unbuilt, must_touch={"incidents", "reports", "analytics_day_counts"})
    assert_single_shard(
        refreshing,
        must_touch={
            "analytics_day_counts",
            "analytics_cases",
            "analytics_month_counts",
            "analytics_month_close",
            "analytics_month_close_wards",
            "analytics_rollup_days",
        },
    )
    assert_single_shard(
        reading,
        must_touch={"analytics_month_counts", "analytics_month_close_wards", "analytics_cases"},
    )
    assert_single_shard(stale, must_touch={"analytics_day_counts", "incidents", "reports"})


def test_notice_delivery_runs_on_one_shard(demo_db: Database, tmp_path: Path) -> None:
    """The outbox worker's statements for one job: the mail server down (every notice waits),
    then up — one message accepted, one refused for now (retried: a follow-up job), one
    refused for good — then the retry."""
    from geo311.kernel.notify.worker import build_deliverer

    def reply(caught: Caught) -> str:
        to = caught.rcpt_tos[0]
        if to.startswith("gone"):
            return "550 5.1.1 No such mailbox"
        if to.startswith("later") and not any(c.rcpt_tos == [to] for c in sink.refused):
            return "451 4.3.0 Try again later"
        return "250 OK"

    sink = SmtpSink(reply=reply)  # not listening yet: the mail server is down
    deliverer = build_deliverer(demo_db, notify_settings(tmp_path, sink.port))
    open_incident_with_reporters(
        demo_db,
        [
            {"email": "ok@example.org"},
            {"email": "later@example.org"},
            {"email": "gone@example.org"},
        ],
    )
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
    ids = [r.id for r in notice_rows(demo_db)]
    # The test's own reads go through a second engine, so only the worker's are recorded.
    reader = Database.connect(demo_db.engine.url.render_as_string(hide_password=False))

    def deliver_until(done: Callable[[], bool]) -> None:
        def attempt() -> bool:
            deliverer.deliver(jurisdiction_id=jid, notice_ids=ids)
            return done()

        assert wait_until(attempt)

    def statuses() -> dict[str, str]:
        return {r.recipient: r.status for r in notice_rows(reader)}

    try:
        with recording(demo_db, driver=True) as rec:
            deliverer.deliver(jurisdiction_id=jid, notice_ids=ids)
            assert set(statuses().values()) == {"retry"}
            sink.start()
            deliver_until(lambda: statuses()["gone@example.org"] == "failed")
            deliver_until(lambda: set(statuses().values()) == {"sent", "failed"})
        final = statuses()
    finally:
        sink.stop()
        deliverer.close()
        reader.dispose()
    assert final == {
        "ok@example.org": "sent",
        "later@example.org": "sent",
        "gone@example.org": "failed",
    }
    assert sorted(str(m["To"]) for m in sink.messages()) == ["later@example.org", "ok@example.org"]
    assert_single_shard(rec, must_touch={"notices"})


def test_moving_a_crew_user_between_crews_runs_on_one_shard(
    client: TestClient, demo_db: Database
) -> None:
    """Both crews' versions move on (an edit read before is refused), without a statement that
    visits every city's shard."""
    admin = _auth(demo_db, "admin")
    staff_token(demo_db, "crew", "sam", crew="streets")
    before = {c["code"]: c["version"] for c in client.get("/api/v1/crews", headers=admin).json()}
    with recording(demo_db) as rec:
        r = client.put("/api/v1/staff/sam/crew", json={"crew": "water"}, headers=admin)
    assert r.status_code == 200, r.text
    after = {c["code"]: c["version"] for c in client.get("/api/v1/crews", headers=admin).json()}
    assert after["streets"] == before["streets"] + 1
    assert after["water"] == before["water"] + 1
    assert_single_shard(rec, must_touch={"crews"})


def test_a_table_a_later_migration_creates_is_distributed_with_the_others(db_url: str) -> None:
    """What env.py sets up for every migration run: a new tenant table (an int identity, foreign
    keys to jurisdictions and to incidents, which Citus refuses in one CREATE TABLE) is created
    through Alembic's operations, comes out distributed and co-located, and its foreign key
    still refuses a row with no incident."""
    import sqlalchemy as sa
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy.exc import IntegrityError

    from geo311.kernel import distribute

    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            ctx = MigrationContext.configure(conn)
            distribute.hook_create_table(ctx.impl, conn)
            Operations(ctx).create_table(
                "incident_tags",
                sa.Column("jurisdiction_id", sa.SmallInteger(), sa.ForeignKey("jurisdictions.id")),
                sa.Column("id", sa.Integer(), sa.Identity(always=False)),
                sa.Column("incident_id", sa.BigInteger(), nullable=False),
                sa.ForeignKeyConstraint(
                    ["jurisdiction_id", "incident_id"],
                    ["incidents.jurisdiction_id", "incidents.id"],
                ),
                sa.PrimaryKeyConstraint("jurisdiction_id", "id"),
            )
        with engine.connect() as conn:
            kinds = conn.execute(
                text(
                    "SELECT citus_table_type, count(DISTINCT colocation_id) FROM citus_tables "
                    "WHERE table_name IN ('incidents'::regclass, 'incident_tags'::regclass) "
                    "GROUP BY 1"
                )
            ).all()
            assert kinds == [("distributed", 1)]
            with pytest.raises(IntegrityError):
                conn.execute(
                    text("INSERT INTO incident_tags (jurisdiction_id, incident_id) VALUES (1, -1)")
                )
    finally:
        engine.dispose()
