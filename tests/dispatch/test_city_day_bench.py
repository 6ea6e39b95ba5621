"""The city that bench/city_day.py generates, at toy size: the same for the same seed, and
stored through the services the way the bench needs it."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text

from dispatch import service
from geo311.kernel.database import Database

BENCH = Path(__file__).resolve().parents[2] / "bench" / "city_day.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("city_day_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_bench_city_is_seeded_and_every_ward_has_two_crews_per_skill(
    bench: ModuleType, db: Database, shared_data: Path
) -> None:
    roads = shared_data / "roads"
    lines = bench.lines_from_osm(str(roads / "monaco.osm.pbf"))
    area = bench.read_poly(roads / "monaco.poly")
    city = bench.generate(lines, area, jobs=40, crews=10, seed=7)
    assert city == bench.generate(lines, area, jobs=40, crews=10, seed=7)
    assert city.jobs != bench.generate(lines, area, jobs=40, crews=10, seed=8).jobs

    with db.session() as session:
        jid = bench.store_city(session, city)
    with db.session() as session:
        crews = service.list_crews(session, jurisdiction_id=jid)
        cover = Counter((skill, ward) for c in crews for skill in c.skills for ward in c.territory)
        assert {(s, str(w)) for s in bench.SKILLS for w in range(1, bench.WARDS + 1)} == set(cover)
        assert min(cover.values()) >= 2
        rows = session.execute(
            text(
                """
                SELECT w.status, w.crew_id, i.ward_id, t.window_start
                FROM work_orders w
                JOIN incidents i ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id
                LEFT JOIN work_order_terms t
                  ON t.jurisdiction_id = w.jurisdiction_id AND t.work_order_id = w.id
                WHERE w.jurisdiction_id = :jid
                """
            ),
            {"jid": jid},
        ).all()
    assert len(rows) == 40
    # Every job went to a crew by the rules, as intake would have done.
    assert {r.status for r in rows} == {"assigned"}
    assert all(r.crew_id is not None for r in rows)
    assert all(r.ward_id is not None for r in rows)
    appointments = sum(j.appointment is not None for j in city.jobs)
    assert sum(r.window_start is not None for r in rows) == appointments
