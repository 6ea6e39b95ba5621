"""The dispatcher's board (GET /api/v1/dispatch/board): the page's one request, checked
against the plan API and the queue API it stands in for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings
from tests.support import pooled_app, staff_token

DAY_S = "2026-06-01"


@pytest.fixture
def client(demo_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    routing = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)
    settings = Settings(data_dir=tmp_path, jurisdiction="demo", routing=routing)
    with TestClient(pooled_app(settings, db=demo_db)) as c:
        yield c


def test_the_board_agrees_with_the_plan_and_the_queue(
    client: TestClient, demo_db: Database
) -> None:
    auth = {"Authorization": f"Bearer {staff_token(demo_db, 'dispatcher')}"}
    unplanned = client.get(f"/api/v1/dispatch/board?date={DAY_S}", headers=auth).json()
    assert unplanned["version"] is None
    assert unplanned["routes"] == []
    assert all(j["eta"] is None for j in unplanned["jobs"])

    plan = client.post(f"/api/v1/plans?date={DAY_S}", headers=auth).json()
    job = plan["routes"][0]["stops"][0]["work_order_id"]
    r = client.post(
        f"/api/v1/plans/{DAY_S}/moves",
        json={"plan_version": plan["version"], "work_order_ids": [job], "to_crew": None},
        headers=auth,
    )
    plan = r.json()
    board = client.get(f"/api/v1/dispatch/board?date={DAY_S}", headers=auth).json()
    assert board["version"] == plan["version"]
    jobs = {j["id"]: j for j in board["jobs"]}
    for route in plan["routes"]:
        assert next(r for r in board["routes"] if r["crew"] == route["crew"])["stops"] == [
            s["work_order_id"] for s in route["stops"]
        ]
        for stop in route["stops"]:
            shown = jobs[stop["work_order_id"]]
            assert (shown["crew"], shown["seq"], shown["eta"]) == (
                route["crew"],
                stop["seq"],
                stop["eta"],
            )
    queue = client.get("/api/v1/dispatch/queue", headers=auth).json()
    assert {q["work_order_id"] for q in queue} == {i for i, j in jobs.items() if j["queued"]}
    assert jobs[job]["crew"] is None
    assert jobs[job]["queued"] == "dispatcher"
    # Every job carries its first report's tracking number and the crews their own colours.
    assert all(j["tracking_id"] for j in board["jobs"])
    assert len({c["colour"] for c in board["crews"]}) == len(board["crews"])
    assert client.get("/api/v1/dispatch/board?date=2026-13-01", headers=auth).status_code == 422
