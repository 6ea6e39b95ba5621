"""The dispatcher's page (/dispatch) in headless Chromium at desktop size, as the demo
dispatcher uses it on the demo city's planned Monday: routes and queue in crew colours, a box
drawn around two jobs given to another crew after a what-if preview, two dispatchers at once
(one sees the other's move live, then meets the conflict on its stale view), a crew's
completion leaving the map live, a merge and its undo from a popup, the ward filter, and a
resident's markup shown as text. An axe-core audit with nothing serious."""

from __future__ import annotations

import re
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
from tests.maps.live import Recorder, keep_shot, record, screenshot, serve
from tests.pages.test_map_page import DESKTOP, EVIL, audit
from tests.support import jpeg, staff_token

DAY = date(2026, 6, 1)  # the Monday of the demo city's "now"


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
    keep_shot(screenshot(page, folder, name))


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
        assert page.evaluate("(id) => window.dispatchPage.state.markers.has(id)", queued_id)
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


def _board(url: str, db: Database) -> dict[str, Any]:
    r = httpx.get(
        f"{url}/api/v1/dispatch/board", params={"date": str(DAY)}, headers=_bearer(db), timeout=30
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _lonely_pair(board: dict[str, Any], ids: list[int]) -> tuple[int, int]:
    """Two of ``ids`` whose bounding box, widened a little, holds no other open job: what a
    box drawn around them catches is exactly these two."""
    jobs = {j["id"]: j for j in board["jobs"]}
    best: tuple[float, tuple[int, int]] | None = None
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            ja, jb = jobs[a], jobs[b]
            if (ja["lon"], ja["lat"]) == (jb["lon"], jb["lat"]):
                continue
            w, e = sorted((ja["lon"], jb["lon"]))
            s, n = sorted((ja["lat"], jb["lat"]))
            mx, my = max((e - w) * 0.25, 0.0008), max((n - s) * 0.25, 0.0008)
            inside = [
                j["id"]
                for j in board["jobs"]
                if w - mx <= j["lon"] <= e + mx and s - my <= j["lat"] <= n + my
            ]
            if sorted(inside) == sorted((a, b)):
                size = (e - w) + (n - s)
                if best is None or size < best[0]:
                    best = (size, (a, b))
    assert best is not None, "two jobs of the crew stand apart from the rest"
    return best[1]


def draw_box_around(
    page: Any, board: dict[str, Any], ids: tuple[int, int], *, lasso: bool = False
) -> None:
    """Fit the map to the two jobs, switch on the box (or lasso) tool and drag around them."""
    jobs = [j for j in board["jobs"] if j["id"] in ids]
    corners = page.evaluate(
        """(pts) => {
            const root = document.getElementById("dispatch-map");
            const map = window[root.dataset.map];
            map.fitBounds(pts, {padding: [160, 160], animate: false});
            const box = map.getContainer().getBoundingClientRect();
            return pts.map((p) => {
                const c = map.latLngToContainerPoint(p);
                return [c.x + box.left, c.y + box.top];
            });
        }""",
        [[j["lat"], j["lon"]] for j in jobs],
    )
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    x0, y0, x1, y1 = min(xs) - 10, min(ys) - 10, max(xs) + 10, max(ys) + 10
    page.get_by_role(
        "button", name="Select an area (lasso)" if lasso else "Select an area (box)"
    ).click()
    page.mouse.move(x0, y0)
    page.mouse.down()
    if lasso:  # a hand-drawn ring around both: over, down, back and up
        for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)):
            page.mouse.move(x, y, steps=6)
    else:
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
        page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


def test_a_box_around_two_jobs_of_one_crew_gives_them_to_another_after_a_preview(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
    tmp_path: Path,
) -> None:
    board = _board(app_url, demo_db)
    pair = _lonely_pair(board, _route_ids(planned, "streets"))
    context, page, recorder = open_dispatch(browser, app_url, dispatcher)
    try:
        draw_box_around(page, board, pair)
        assert page.locator("#selection-count").inner_text() == "2 selected"
        assert sorted(page.evaluate("[...window.dispatchPage.state.selected]")) == sorted(pair)
        page.get_by_label("Give to crew").select_option("streets-2")
        page.get_by_role("button", name="Preview the move").click()
        dialog = page.locator("dialog#preview")
        dialog.locator('.preview-crew[data-crew="streets-2"]').wait_for(timeout=60_000)
        after_new = dialog.locator('.preview-crew[data-crew="streets-2"] li')
        previewed = {int(x) for x in after_new.evaluate_all("(l) => l.map((i) => i.dataset.job)")}
        assert set(pair) <= previewed
        assert not set(pair) & {
            int(x)
            for x in dialog.locator('.preview-crew[data-crew="streets"] li').evaluate_all(
                "(l) => l.map((i) => i.dataset.job)"
            )
        }
        # The what-if stored nothing: the plan is at the version the page shows.
        assert _plan(app_url, demo_db)["version"] == planned["version"]
        shot(page, tmp_path, "dispatch-preview")
        page.get_by_role("button", name="Commit the move").click()
        wait_for(
            lambda: (
                set(pair) <= set(crew_jobs(page, "streets-2"))
                and not set(pair) & set(crew_jobs(page, "streets"))
            ),
            timeout_s=60,
            what="both jobs on streets-2's list and off streets'",
        )
        for job in pair:
            eta = page.locator(f'#crew-list > li[data-crew="streets-2"] li[data-job="{job}"] .eta')
            assert re.fullmatch(r"\d\d:\d\d", eta.inner_text().strip())
        assert page.locator("path.route-streets-2").count() == 1
        shot(page, tmp_path, "dispatch-moved")
        # The plan API agrees.
        plan = _plan(app_url, demo_db)
        assert set(pair) <= set(_route_ids(plan, "streets-2"))
        assert not set(pair) & set(_route_ids(plan, "streets"))
        assert plan["version"] == planned["version"] + 1
        assert recorder.problems() == []
    finally:
        context.close()


def test_two_dispatchers_one_sees_the_others_move_live_then_its_stale_move_is_explained(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
    tmp_path: Path,
) -> None:
    first, second = _route_ids(planned, "streets")[:2]
    ctx_a, page_a, _ = open_dispatch(browser, app_url, dispatcher)
    ctx_b, page_b, _ = open_dispatch(browser, app_url, dispatcher)
    try:
        # B looks at moving the first job: its preview holds the version it saw.
        page_b.locator(f'#crew-list button.job-line[data-job="{first}"]').click()
        page_b.get_by_label("Give to crew").select_option("streets-2")
        page_b.get_by_role("button", name="Preview the move").click()
        page_b.locator('dialog#preview .preview-crew[data-crew="streets-2"]').wait_for(
            timeout=60_000
        )
        # A moves the second job meanwhile.
        page_a.locator(f'#crew-list button.job-line[data-job="{second}"]').click()
        page_a.get_by_label("Give to crew").select_option("streets-2")
        page_a.get_by_role("button", name="Preview the move").click()
        page_a.get_by_role("button", name="Commit the move").click(timeout=60_000)
        # B sees it move without a reload.
        loads = page_b.evaluate("window.dispatchPage.loads")
        wait_for(
            lambda: second in crew_jobs(page_b, "streets-2"),
            timeout_s=20,
            what="the other dispatcher's move on B's page",
        )
        assert page_b.evaluate("window.dispatchPage.loads") > loads
        # B commits its stale preview: refused, explained, nothing moved.
        page_b.get_by_role("button", name="Commit the move").click()
        problem = page_b.locator("#preview-status")
        problem.filter(has_text="Someone else changed the plan").wait_for(timeout=30_000)
        assert f"looked at version {planned['version']}" in problem.inner_text()
        shot(page_b, tmp_path, "dispatch-conflict")
        plan = _plan(app_url, demo_db)
        assert first in _route_ids(plan, "streets")
        assert second in _route_ids(plan, "streets-2")
    finally:
        ctx_a.close()
        ctx_b.close()


def test_a_job_a_crew_completes_through_the_api_leaves_the_map_live(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
) -> None:
    job = _route_ids(planned, "streets")[0]
    crew = _bearer(demo_db, "crew", name="sam-streets", crew="streets")
    context, page, _ = open_dispatch(browser, app_url, dispatcher)
    try:
        assert page.locator(f'#crew-list li[data-job="{job}"]').count() == 1
        with httpx.Client(base_url=app_url, headers=crew, timeout=30) as client:
            version = client.get(f"/api/v1/work-orders/{job}").json()["version"]
            r = client.post(
                f"/api/v1/work-orders/{job}/transitions",
                json={"to": "in_progress", "expected_version": version},
            )
            assert r.status_code == 200, r.text
            r = client.post(
                f"/api/v1/work-orders/{job}/complete",
                files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
                data={
                    "resolution_code": "repaired",
                    "note": "filled",
                    "expected_version": str(r.json()["version"]),
                },
            )
            assert r.status_code == 200, r.text
        wait_for(
            lambda: (
                page.locator(f'#crew-list li[data-job="{job}"]').count() == 0
                and not page.evaluate("(id) => window.dispatchPage.state.markers.has(id)", job)
            ),
            timeout_s=20,
            what="the completed job off the list and the map",
        )
    finally:
        context.close()


def test_a_merge_from_the_popup_and_its_undo_put_the_reports_back(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
    tmp_path: Path,
) -> None:
    board = _board(app_url, demo_db)
    by_category: dict[str, list[dict[str, Any]]] = {}
    for j in board["jobs"]:
        if j["status"] != "in_progress":
            by_category.setdefault(j["category"], []).append(j)
    keep, fold = next(v for v in by_category.values() if len(v) >= 2)[:2]

    def reports(incident: int) -> list[str]:
        r = httpx.get(
            f"{app_url}/api/v1/staff/incidents/{incident}/reports",
            headers=_bearer(demo_db),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return sorted(x["tracking_id"] for x in r.json()["reports"])

    before = {i: reports(i) for i in (keep["incident_id"], fold["incident_id"])}
    context, page, recorder = open_dispatch(browser, app_url, dispatcher)
    try:
        page.evaluate("(id) => window.dispatchPage.openPopup(id)", keep["id"])
        popup = page.locator(".leaflet-popup .dispatch-popup")
        popup.wait_for(timeout=15_000)
        popup.get_by_label("Merge incident number … into this one").fill(str(fold["incident_id"]))
        popup.get_by_role("button", name="Merge", exact=True).click()
        undo = page.locator(".leaflet-popup .dispatch-popup").get_by_role(
            "button", name=re.compile(r"^Undo \(merge")
        )
        undo.wait_for(timeout=20_000)
        merged = reports(keep["incident_id"])
        assert merged == sorted(before[keep["incident_id"]] + before[fold["incident_id"]])
        # The folded incident's job is no longer open work.
        assert page.locator(f'li[data-job="{fold["id"]}"]').count() == 0
        shot(page, tmp_path, "dispatch-merged")
        undo.click()
        wait_for(
            lambda: page.locator(f'li[data-job="{fold["id"]}"]').count() == 1,
            what="the folded job back on the lists",
        )
        assert {i: reports(i) for i in before} == before
        assert recorder.problems() == []
    finally:
        context.close()


def test_choosing_a_ward_leaves_only_its_jobs_on_the_map_and_in_the_lists(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
    tmp_path: Path,
) -> None:
    context, page, _ = open_dispatch(browser, app_url, dispatcher)
    try:
        board = page.evaluate("window.dispatchPage.state.board")
        ward = "3"
        expected = {j["id"] for j in board["jobs"] if j["ward"] == ward}
        assert expected
        assert len(expected) < len(board["jobs"])
        page.get_by_label("Ward").select_option(ward)
        on_map = set(page.evaluate("[...window.dispatchPage.state.markers.keys()]"))
        assert on_map == expected
        listed = {
            int(x)
            for x in page.locator("#crew-list li.job, #queue-list li.job").evaluate_all(
                "(l) => l.map((i) => i.dataset.job)"
            )
        }
        assert listed == expected
        shown = page.locator("#dispatch-status").inner_text()
        assert shown.startswith(f"{len(expected)} of {len(board['jobs'])}")
        shot(page, tmp_path, "dispatch-ward")
    finally:
        context.close()


def test_a_residents_markup_is_shown_as_text_in_popups_and_lists(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
) -> None:
    job = _route_ids(planned, "streets")[0]
    with demo_db.session() as s:
        s.execute(
            text(
                "UPDATE reports SET description = :evil, address = :evil "
                "WHERE incident_id = (SELECT incident_id FROM work_orders WHERE id = :id)"
            ),
            {"evil": EVIL, "id": job},
        )
    context, page, recorder = open_dispatch(browser, app_url, dispatcher)
    try:
        line = page.locator(f'#crew-list button.job-line[data-job="{job}"]')
        assert EVIL in line.inner_text()
        page.evaluate("(id) => window.dispatchPage.openPopup(id)", job)
        popup = page.locator(".leaflet-popup .dispatch-popup")
        popup.wait_for(timeout=15_000)
        assert popup.locator(".description").inner_text() == EVIL
        assert popup.locator(".address").inner_text() == EVIL
        assert page.locator("img[src=x]").count() == 0
        assert recorder.dialogs == []
        assert recorder.problems() == []
    finally:
        context.close()


def test_a_lasso_around_two_jobs_selects_those_two(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
) -> None:
    board = _board(app_url, demo_db)
    pair = _lonely_pair(board, _route_ids(planned, "streets"))
    context, page, _ = open_dispatch(browser, app_url, dispatcher)
    try:
        draw_box_around(page, board, pair, lasso=True)
        assert page.locator("#selection-count").inner_text() == "2 selected"
        assert sorted(page.evaluate("[...window.dispatchPage.state.selected]")) == sorted(pair)
        pressed = page.locator('#crew-list button.job-line[aria-pressed="true"]')
        assert sorted(
            int(x) for x in pressed.evaluate_all("(l) => l.map((b) => b.dataset.job)")
        ) == sorted(pair)
        # Escape clears it, as the keys line says.
        page.keyboard.press("Escape")
        assert page.locator("#selection-count").inner_text().startswith("Nothing selected")
    finally:
        context.close()
