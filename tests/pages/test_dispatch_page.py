"""The dispatcher's page (/dispatch) in headless Chromium at desktop size, as the demo
dispatcher uses it on the demo city's planned Monday: routes and queue in crew colours, a box
drawn around two jobs given to another crew after a what-if preview, two dispatchers at once
(one sees the other's move live, then meets the conflict on its stale view), a crew's
completion leaving the map live, a merge and its undo from a popup, the ward filter, and a
resident's markup shown as text. An axe-core audit with nothing serious."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from fixtures.demo_users import DemoSignin, ensure_demo_signins
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import RoutingSettings, Settings, SigninSettings
from tests.maps.live import Recorder, record, screenshot, serve
from tests.pages.test_map_page import DESKTOP, EVIL, audit
from tests.support import jpeg, open_incident_with_reporters, staff_token

DAY = date(2026, 6, 1)  # the Monday of the demo city's "now"
SHOTS = Path("/work/wt/dpage-shots")


@pytest.fixture
def app_url(demo_db: Database, tmp_path: Path) -> Iterator[str]:
    routing = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)
    with serve(
        demo_db, lambda port: Settings(data_dir=tmp_path, port=port, routing=routing)
    ) as url:
        yield url


@pytest.fixture
def dispatcher(demo_db: Database) -> DemoSignin:
    cheap = SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
    found = ensure_demo_signins(demo_db, slug="demo", passwords=Passwords(cheap))
    return next(d for d in found if d.role == "dispatcher")


def _bearer(db: Database, role: str = "dispatcher", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(db, role, **kw)}"}


@pytest.fixture
def planned(app_url: str, demo_db: Database) -> dict[str, Any]:
    """A second streets crew, and the day planned: the plan as the API answers it."""
    crew = {
        "code": "streets-2",
        "name": "Second streets crew",
        "depot": {"lon": -93.2, "lat": 44.96, "name": "East Yard"},
        "shift_start": "07:00",
        "shift_end": "15:30",
        "workdays": [1, 2, 3, 4, 5],
        "skills": ["paving"],
        "territory": ["1", "2", "3", "4", "5", "6"],
    }
    with httpx.Client(base_url=app_url, timeout=60) as client:
        r = client.post("/api/v1/crews", json=crew, headers=_bearer(demo_db, "admin"))
        assert r.status_code == 201, r.text
        r = client.post(f"/api/v1/plans?date={DAY}", headers=_bearer(demo_db))
        assert r.status_code == 200, r.text
        return dict(r.json())


def _plan(url: str, db: Database) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/v1/plans/{DAY}", headers=_bearer(db), timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _route_ids(plan: dict[str, Any], crew: str) -> list[int]:
    route = next(r for r in plan["routes"] if r["crew"] == crew)
    return [s["work_order_id"] for s in route["stops"]]


def open_dispatch(browser: Any, url: str, demo: DemoSignin) -> tuple[Any, Any, Recorder]:
    """Open /dispatch unsigned, sign in where it sends us, come back; then open it afresh
    with a recorder."""
    context = browser.new_context(viewport=DESKTOP)
    signin = context.new_page()
    signin.goto(f"{url}/dispatch?date={DAY}")
    assert urlsplit(signin.url).path == "/login"
    signin.get_by_label("Name").fill(demo.name)
    signin.get_by_label("Password").fill(demo.password)
    signin.get_by_role("button", name="Sign in").click()
    signin.wait_for_url(re.compile(r".*/dispatch\?date="))
    signin.close()
    page = context.new_page()
    recorder = record(page)
    page.goto(f"{url}/dispatch?date={DAY}")
    try:
        page.wait_for_selector("#dispatch-map[data-state=ready]", state="attached", timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"the dispatch page did not get ready: {recorder.console}") from exc
    return context, page, recorder


def shot(page: Any, folder: Path, name: str) -> None:
    path = screenshot(page, folder, name)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def crew_jobs(page: Any, crew: str) -> list[int]:
    """The work order ids the crews' list shows under ``crew``, in route order."""
    ids = page.locator(f'#crew-list > li[data-crew="{crew}"] li.job').evaluate_all(
        "(items) => items.map((i) => Number(i.dataset.job))"
    )
    return [int(i) for i in ids]


def wait_for(check: Any, *, timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_the_routes_and_the_queue_are_on_the_map_in_crew_colours(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
    tmp_path: Path,
) -> None:
    # One job back to the queue, with the reason a dispatcher gave.
    queued_id = _route_ids(planned, "lighting")[0]
    body = {
        "plan_version": planned["version"],
        "work_order_ids": [queued_id],
        "to_crew": None,
        "reason": "waiting for a lift truck",
    }
    r = httpx.post(
        f"{app_url}/api/v1/plans/{DAY}/moves", json=body, headers=_bearer(demo_db), timeout=60
    )
    assert r.status_code == 200, r.text
    planned = r.json()
    context, page, recorder = open_dispatch(browser, app_url, dispatcher)
    try:
        board = page.evaluate("window.dispatchPage.state.board")
        colours = {c["code"]: c["colour"] for c in board["crews"]}
        assert len(set(colours.values())) == len(colours), "each crew its own colour"
        # Each route of the plan is a line in its crew's colour.
        for route in planned["routes"]:
            if not route["stops"]:
                continue
            line = page.locator(f"path.route-{route['crew']}")
            assert line.count() == 1, route["crew"]
            assert line.get_attribute("stroke") == colours[route["crew"]]
            # The crew's list shows the route's stops first, in order, with ETAs.
            stops = [s["work_order_id"] for s in route["stops"]]
            assert crew_jobs(page, route["crew"])[: len(stops)] == stops
            swatch = page.locator(f'#crew-list > li[data-crew="{route["crew"]}"] .crew-swatch')
            assert swatch.evaluate("(n) => getComputedStyle(n).backgroundColor") == _rgb(
                colours[route["crew"]]
            )
        first = planned["routes"][0]["stops"][0]["work_order_id"]
        eta = page.locator(f'#crew-list li.job[data-job="{first}"] .eta').inner_text()
        assert re.fullmatch(r"\d\d:\d\d", eta.strip()), eta
        # The queue: open work with no crew, each with the reason it waits.
        queued = [j["id"] for j in board["jobs"] if j["crew"] is None]
        assert queued_id in queued
        items = page.locator("#queue-list li.job")
        assert items.count() == len(queued)
        why = page.locator(f'#queue-list li.job[data-job="{queued_id}"] .why')
        assert why.inner_text() == "waiting for a lift truck"
        # On the map too, as a queued (dashed, crew-less) marker.
        assert page.evaluate(
            "(id) => window.dispatchPage.state.markers.has(id)", queued_id
        )
        shot(page, tmp_path, "dispatch-day")
        problems = audit(page, app_url)
        assert problems == [], "\n".join(problems)
        assert recorder.problems() == []
        assert recorder.dialogs == []
    finally:
        context.close()


def _rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"
