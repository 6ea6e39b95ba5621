"""The planner's summary tables (maps.analytics.rollup) on the known history of
tests/maps/history.py: the ward table read through them equals the one counted from the source
tables, right after a refresh and after every kind of write, before the next refresh."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from geo311.flows import analytics as analytics_flow
from geo311.flows import submit_report
from geo311.kernel.database import Database
from geo311.kernel.media.store import LocalMediaStore
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.settings import DedupSettings, IntakeSettings, MediaSettings
from geo311.resident.dedup import importer, moves
from geo311.resident.intake import service as intake_service
from geo311.resident.intake.models import Report
from layers import service as layers_service
from maps.analytics import queries, rollup
from tests.maps import history
from tests.support import notify_settings, wait_until
from work_orders import changes, transitions
from work_orders.changes import AnalyticsChange
from work_orders.models import Incident

# (first day, last day, category): a month, a period across the ward-map change (1 March), one
# category, the hotspot month, the whole history, a year of one category, ragged ends around
# whole months (read from the month summaries).
PERIODS = [
    (date(2025, 6, 15), date(2026, 2, 10), None),
    (date(2025, 12, 20), date(2026, 3, 12), "pothole"),
    (date(2026, 1, 1), date(2026, 1, 31), None),
    (date(2026, 2, 1), date(2026, 3, 31), None),
    (date(2026, 3, 1), date(2026, 3, 31), "streetlight"),
    (date(2025, 6, 1), date(2025, 6, 30), None),
    (date(2025, 6, 1), date(2026, 12, 31), None),
    (date(2026, 1, 1), date(2026, 12, 31), "pothole"),
]


@pytest.fixture
def city(db: Database) -> history.City:
    return history.build(db)


def _table(
    db: Database, jid: int, first: date, last: date, category: str | None, *, summaries: bool
) -> list[Any]:
    """Return the ward table as comparable values: every row's figures, the city's, unplaced."""
    with db.session() as session:
        period = queries.resolve_period(
            first_day=first, last_day=last, timezone="UTC", max_days=800
        )
        filters = queries.resolve_filters(
            session, jurisdiction_id=jid, category=category, group=None
        )
        table = queries.ward_table(
            session,
            jurisdiction_id=jid,
            period=period,
            filters=filters,
            min_cases=5,
            now=datetime(2026, 12, 1, tzinfo=UTC),
            summaries=summaries,
        )
    return [
        [(r.ward.code, r.compared.figures, r.compared.rank) for r in table.rows],
        table.city,
        table.unplaced_reports,
    ]


def _plain(value: Any) -> Any:
    """Numbers as floats: the source path's sums come back as Decimal, the same numbers."""
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)
    return value


def _trends(
    db: Database,
    jid: int,
    first: date,
    last: date,
    category: str | None,
    ward_code: str | None,
    *,
    summaries: bool,
) -> list[Any]:
    """Return the weekly trend (the city's, or a ward's) as comparable values."""
    with db.session() as session:
        period = queries.resolve_period(
            first_day=first, last_day=last, timezone="UTC", max_days=800
        )
        filters = queries.resolve_filters(
            session, jurisdiction_id=jid, category=category, group=None
        )
        _, weeks = queries.trends(
            session,
            jurisdiction_id=jid,
            period=period,
            filters=filters,
            ward_code=ward_code,
            min_cases=2,
            now=datetime(2026, 12, 1, tzinfo=UTC),
            summaries=summaries,
        )
    return [(w.week, w.figures, w.too_few) for w in weeks]


def assert_same_answer(db: Database, jid: int) -> None:
    """The ward table and the weekly trends (the city's and each ward's) read through the
    summaries are the same numbers as counted from the source tables."""
    for first, last, category in PERIODS:
        through = _plain(_table(db, jid, first, last, category, summaries=True))
        direct = _plain(_table(db, jid, first, last, category, summaries=False))
        assert through == direct, (first, last, category)
        codes = sorted({code for code, _, _ in through[0]})
        for ward_code in [None, *codes]:
            weekly = _plain(_trends(db, jid, first, last, category, ward_code, summaries=True))
            direct_weekly = _plain(
                _trends(db, jid, first, last, category, ward_code, summaries=False)
            )
            assert weekly == direct_weekly, (first, last, category, ward_code)


def refresh(db: Database, jid: int) -> rollup.Refreshed:
    with db.session() as session:
        return rollup.refresh(session, jurisdiction_id=jid, today=date(2026, 12, 31))


def stale(db: Database, jid: int, first: date, last: date) -> list[date]:
    with db.session() as session:
        return rollup.stale_days(
            session, jurisdiction_id=jid, timezone="UTC", first_day=first, last_day=last
        )


def pending(db: Database, jid: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                text("SELECT count(*) FROM analytics_changes WHERE jurisdiction_id = :j"),
                {"j": jid},
            )
            or 0
        )


def test_a_refreshed_city_reads_the_hand_worked_figures_from_the_summaries(
    db: Database, city: history.City
) -> None:
    done = refresh(db, city.jid)
    # Every day from the first report (June 2025) to "today" (31 December 2026) is built.
    assert done.days == (date(2026, 12, 31) - date(2025, 6, 10)).days + 1
    assert pending(db, city.jid) == 0
    assert stale(db, city.jid, date(2026, 1, 1), date(2026, 1, 31)) == []

    [rows, town, unplaced] = _table(
        db, city.jid, date(2026, 1, 1), date(2026, 1, 31), None, summaries=True
    )
    a1 = dict((code, fig) for code, fig, _ in rows)["A1"]
    assert (a1.reports, a1.incidents, a1.backlog) == (6, 5, 1)
    assert (a1.median_close_h, a1.p90_close_h) == (pytest.approx(25.0), pytest.approx(79.0))
    assert a1.sla_breach_share == pytest.approx(0.4)
    assert a1.backlog_median_age_h == pytest.approx(288.0)
    assert (a1.reopen_share, a1.fixed_yes, a1.fixed_no) == (pytest.approx(0.2), 2, 1)
    assert (town.median_close_h, town.p90_close_h) == (pytest.approx(40.0), pytest.approx(230.0))
    assert unplaced == 0
    assert_same_answer(db, city.jid)


def test_a_day_is_counted_afresh_while_a_change_to_it_is_pending(
    db: Database, city: history.City
) -> None:
    refresh(db, city.jid)
    # A write that bypassed the services (and so noted nothing) shows in the summaries' figures:
    # proof that a built month is read from them...
    with db.session() as session:
        tamper(session, city.jid)
    first, last = date(2026, 1, 1), date(2026, 1, 31)
    wrong = _table(db, city.jid, first, last, None, summaries=True)
    assert wrong[1].reports == 110
    # ...and a change noted for the incident of that day makes the day counted afresh.
    with db.session() as session:
        changes.note(
            session, jurisdiction_id=city.jid, entity="incident", entity_ids=[city.incidents["P1"]]
        )
    assert stale(db, city.jid, first, last) == [date(2026, 1, 5)]
    assert _table(db, city.jid, first, last, None, summaries=True)[1].reports == 10
    assert refresh(db, city.jid).changes == 1
    assert stale(db, city.jid, first, last) == []
    assert _table(db, city.jid, first, last, None, summaries=True)[1].reports == 10


def tamper(session: Session, jid: int) -> None:
    """Add 100 reports to one stored row of 5 January 2026 and to one of its month, as a
    write that bypassed the services (and so noted nothing) would."""
    for table, key, value in (
        ("analytics_day_counts", "day", date(2026, 1, 5)),
        ("analytics_month_counts", "month", date(2026, 1, 1)),
    ):
        ward_key, category = session.execute(
            text(
                f"SELECT ward_key, category_code FROM {table} WHERE jurisdiction_id = :j "
                f"AND {key} = :v AND reports > 0 ORDER BY 1, 2 LIMIT 1"
            ),
            {"j": jid, "v": value},
        ).one()
        session.execute(
            text(
                f"UPDATE {table} SET reports = reports + 100 WHERE jurisdiction_id = :j "
                f"AND {key} = :v AND ward_key = :w AND category_code = :c"
            ),
            {"j": jid, "v": value, "w": ward_key, "c": category},
        )


def _incident(session: Session, incident_id: int) -> Incident:
    found = session.scalar(select(Incident).where(Incident.id == incident_id))
    assert found is not None
    return found


def test_writes_through_the_services_keep_the_answer_exact(
    db: Database, city: history.City, tmp_path: Path
) -> None:
    refresh(db, city.jid)
    ids = city.incidents

    # Closure: P4 (open since 20 January) closes; T2's work goes on hold (its clock stops).
    with db.session() as session:
        p4 = _incident(session, ids["P4"])
        transitions.transition(
            session, incident_or_work_order=p4, to="assigned", actor="dispatcher:test"
        )
        transitions.transition(
            session, incident_or_work_order=p4, to="completed", actor="dispatcher:test"
        )
        l1 = _incident(session, ids["L1"])
        transitions.transition(
            session,
            incident_or_work_order=l1,
            to="on_hold",
            actor="dispatcher:test",
            reason="waiting for parts",
        )
    assert stale(db, city.jid, date(2026, 1, 1), date(2026, 3, 31)) == [
        date(2026, 1, 20),
        date(2026, 3, 10),
    ]
    assert_same_answer(db, city.jid)

    # Reopen: P2 (closed in January) is reopened.
    with db.session() as session:
        transitions.transition(
            session,
            incident_or_work_order=_incident(session, ids["P2"]),
            to="reopened",
            actor="dispatcher:test",
        )
    assert_same_answer(db, city.jid)

    # Merge T4 into T3 (T4 is cancelled, its report moves); split P3's duplicate out.
    with db.session() as session:
        moves.merge(
            session,
            jurisdiction_id=city.jid,
            into_incident_id=ids["T3"],
            from_incident_id=ids["T4"],
            actor="dispatcher:test",
            reason="same tree",
        )
        duplicate = session.scalar(
            select(Report.tracking_id).where(
                Report.incident_id == ids["P3"], Report.dedup_decision == "matched"
            )
        )
        assert duplicate is not None
        moves.split(
            session,
            jurisdiction_id=city.jid,
            tracking_id=duplicate,
            actor="dispatcher:test",
            reason="another hole",
        )
    assert_same_answer(db, city.jid)

    # Intake: a resident reports a pothole on 15 January (the flow's own clock), far from any.
    draft = intake_service.parse_report_form(
        {"category": "pothole", "lon": "0.0095", "lat": "0.0095"},
        channel="api",
        settings=IntakeSettings(),
    )
    with db.sessions() as session:
        submit_report.submit(
            session,
            jurisdiction_id=city.jid,
            jurisdiction_slug="demo",
            draft=draft,
            photo=None,
            media=LocalMediaStore(tmp_path),
            media_settings=MediaSettings(),
            now=datetime(2026, 1, 15, 9, tzinfo=UTC),
        )
        session.commit()
    # intake's one write notes its incident for the summaries, as the ORM writers do
    with db.session() as session:
        noted = session.scalar(
            select(func.count())
            .select_from(AnalyticsChange)
            .where(
                AnalyticsChange.jurisdiction_id == city.jid,
                AnalyticsChange.entity == "incident",
                AnalyticsChange.entity_id
                == select(Report.incident_id)
                .where(Report.jurisdiction_id == city.jid)
                .order_by(Report.id.desc())
                .limit(1)
                .scalar_subquery(),
            )
        )
    assert noted == 1
    assert date(2026, 1, 15) in stale(db, city.jid, date(2026, 1, 1), date(2026, 1, 31))
    assert_same_answer(db, city.jid)

    # Everything taken in: nothing pending, nothing stale, the same answer from storage alone.
    assert refresh(db, city.jid).changes > 0
    assert pending(db, city.jid) == 0
    assert stale(db, city.jid, date(2025, 6, 10), date(2026, 12, 31)) == []
    assert_same_answer(db, city.jid)
    january = _table(db, city.jid, date(2026, 1, 1), date(2026, 1, 31), None, summaries=True)
    assert january[1].reports == 11  # ten, and the one taken in at intake


def test_an_import_keeps_the_answer_exact(db: Database, city: history.City, tmp_path: Path) -> None:
    refresh(db, city.jid)
    export = tmp_path / "export.csv"
    with export.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "time", "category", "lat", "lon"])
        out.writerow(["OLD-1", "2026-01-09 10:00:00", "pothole", 0.0092, 0.0012])
        out.writerow(["OLD-2", "2026-01-09 11:00:00", "tree", 0.0088, 0.0171])
        out.writerow(["OLD-3", "2026-02-02 08:00:00", "pothole", 0.0052, 0.0091])
    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
    summary = importer.import_reports(
        db,
        jurisdiction=jurisdiction,
        path=export,
        mapping=importer.ImportMapping.model_validate(
            {"columns": {"closed": None}, "timezone": "UTC"}
        ),
        settings=DedupSettings(),
    )
    assert summary.imported == 3
    assert {date(2026, 1, 9), date(2026, 2, 2)} <= set(
        stale(db, city.jid, date(2026, 1, 1), date(2026, 2, 28))
    )
    assert_same_answer(db, city.jid)
    refresh(db, city.jid)
    assert stale(db, city.jid, date(2026, 1, 1), date(2026, 2, 28)) == []
    assert_same_answer(db, city.jid)
    january = _table(db, city.jid, date(2026, 1, 1), date(2026, 1, 31), None, summaries=True)
    assert january[1].reports == 12


def test_a_new_ward_map_and_populations_need_no_refresh(db: Database, city: history.City) -> None:
    """Cases keep the ward of their own time, so a new map moves no stored figure; a ward's
    population is read when the table is asked."""
    refresh(db, city.jid)
    with db.session() as session:
        session.execute(
            text("UPDATE ward_maps SET valid_to = '2026-09-01' WHERE name = 'new'"),
        )
        layers_service.load_ward_map(
            session,
            jurisdiction_id=city.jid,
            name="newer",
            valid_from=datetime(2026, 9, 1, tzinfo=UTC),
            valid_to=None,
            wards=[
                layers_service.WardFeature("C1", "All", history._ward(0, 0, 0.02, 0.02), 9000),
            ],
        )
        session.execute(text("UPDATE wards SET population = 3000 WHERE code = 'A1'"))
    assert_same_answer(db, city.jid)
    [rows, _, _] = _table(db, city.jid, date(2026, 1, 1), date(2026, 1, 31), None, summaries=True)
    assert dict((code, fig) for code, fig, _ in rows)["A1"].rate_per_1000 == pytest.approx(2.0)
    codes = [code for code, _, _ in _table(
        db, city.jid, date(2026, 8, 1), date(2026, 9, 30), None, summaries=True
    )[0]]  # fmt: skip
    assert codes == ["B1", "B2", "C1"]


def test_a_period_reads_its_whole_current_months_from_the_month_summaries() -> None:
    """Whole months without a stale day come from the month sums; the ragged ends and a month
    with a stale day are read day by day, the stale day itself afresh."""
    stale_day = date(2025, 6, 12)
    months, days = rollup.layout(date(2025, 2, 10), date(2025, 11, 20), [stale_day])
    assert months == [date(2025, m, 1) for m in (3, 4, 5, 7, 8, 9, 10)]
    june = [date(2025, 6, d) for d in range(1, 31) if d != 12]
    february = [date(2025, 2, d) for d in range(10, 29)]
    november = [date(2025, 11, d) for d in range(1, 21)]
    assert days == february + june + november
    # A period inside one month has no whole month.
    assert rollup.layout(date(2025, 6, 2), date(2025, 6, 30), []) == (
        [],
        [date(2025, 6, d) for d in range(2, 31)],
    )


def test_the_worker_refreshes_a_dirty_day_on_its_schedule(
    db: Database, city: history.City, tmp_path: Path
) -> None:
    refresh(db, city.jid)
    first, last = date(2026, 1, 1), date(2026, 1, 31)
    # The stored day is made wrong (a write that noted nothing), then a change to it is noted:
    # the day is dirty, counted afresh until a refresh rebuilds it.
    with db.session() as session:
        tamper(session, city.jid)
        changes.note(
            session, jurisdiction_id=city.jid, entity="incident", entity_ids=[city.incidents["P1"]]
        )
    assert stale(db, city.jid, first, last) == [date(2026, 1, 5)]

    settings = notify_settings(tmp_path, smtp_port=2525)
    settings.analytics.refresh_cron = "* * * * * *"  # every second
    with BackgroundWorker(settings, db, tasks=[analytics_flow.worker_tasks(db, settings)]):
        assert wait_until(lambda: pending(db, city.jid) == 0, timeout_s=60)
    assert stale(db, city.jid, first, last) == []
    # Read from the summaries alone now, and right: the day was rebuilt from the source tables.
    assert _table(db, city.jid, first, last, None, summaries=True)[1].reports == 10
    assert_same_answer(db, city.jid)


def test_no_refresh_is_scheduled_when_the_schedule_is_empty(
    db: Database, city: history.City, tmp_path: Path
) -> None:
    settings = notify_settings(tmp_path, smtp_port=2525)
    settings.analytics.refresh_cron = ""
    with db.session() as session:
        changes.note(
            session, jurisdiction_id=city.jid, entity="incident", entity_ids=[city.incidents["P1"]]
        )
    noted = pending(db, city.jid)
    assert noted > 0
    with BackgroundWorker(settings, db, tasks=[analytics_flow.worker_tasks(db, settings)]):
        wait_until(lambda: pending(db, city.jid) < noted, timeout_s=3)
    assert pending(db, city.jid) == noted
