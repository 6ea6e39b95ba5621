"""The dispatcher's page (/dispatch) in headless Chromium at desktop size, as the demo
dispatcher uses it on the demo city's planned Monday: routes and queue in crew colours, a box
drawn around two jobs given to another crew after a what-if preview, two dispatchers at once
(one sees the other's move live, then meets the conflict on its stale view), a crew's
completion leaving the map live, a merge and its undo from a popup, the ward filter, and a
resident's markup shown as text. An axe-core audit with nothing serious."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from geo311.kernel.settings import RoutingSettings, Settings
from tests.conftest import DemoTemplates
from tests.maps.live import Recorder, keep_shot, record, screenshot, serve
from tests.pages.test_map_page import DESKTOP, EVIL, audit
from tests.support import CHEAP_SIGNIN, jpeg, staff_token

DAY = date(2026, 6, 1)  # the Monday of the demo city's "now"


ROUTING = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)
# The demo city with its demo accounts, a second streets crew and its Monday planned: built
# once per session (per xdist worker), cloned per test.
DISPATCH_DAY = "geo311_dispatch_day_template"


def _settings(data_dir: Path) -> Callable[[int], Settings]:
    return lambda port: Settings(data_dir=data_dir, port=port, routing=ROUTING, signin=CHEAP_SIGNIN)


@dataclass(frozen=True)
class DispatchDay:
    """What building the planned Monday gave: the demo dispatcher's sign-in, and the plan as
    the API answered it."""

    dispatcher: DemoSignin
    plan: dict[str, Any]


@pytest.fixture(scope="session")
def dispatch_day(
    demo_templates: DemoTemplates, tmp_path_factory: pytest.TempPathFactory
) -> DispatchDay:
    """Build the planned Monday's template as each test once did on its own copy of the city:
    the demo accounts, then, through the API of the app served on it, a second streets crew
    and the day's plan."""
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

    def build(db: Database) -> DispatchDay:
        found = ensure_demo_signins(db, slug="demo", passwords=Passwords(CHEAP_SIGNIN))
        with (
            serve(db, _settings(tmp_path_factory.mktemp("dispatch-day"))) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            r = client.post("/api/v1/crews", json=crew, headers=_bearer(db, "admin"))
            assert r.status_code == 201, r.text
            r = client.post(f"/api/v1/plans?date={DAY}", headers=_bearer(db))
            assert r.status_code == 200, r.text
            plan = dict(r.json())
        return DispatchDay(next(d for d in found if d.role == "dispatcher"), plan)

    return demo_templates.build(DISPATCH_DAY, build)


@pytest.fixture
def demo_db(demo_templates: DemoTemplates, dispatch_day: DispatchDay) -> Iterator[Database]:
    """In this module, the demo city's own fresh copy is one of the planned Monday."""
    with demo_templates.clone(DISPATCH_DAY) as database:
        yield database


@pytest.fixture
def app_url(demo_db: Database, tmp_path: Path) -> Iterator[str]:
    with serve(demo_db, _settings(tmp_path)) as url:
        yield url


@pytest.fixture
def dispatcher(demo_db: Database, dispatch_day: DispatchDay) -> DemoSignin:
    """The demo dispatcher, whose account the planned Monday holds; each test signs in with it
    on its own."""
    return dispatch_day.dispatcher


def _bearer(db: Database, role: str = "dispatcher", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(db, role, **kw)}"}


@pytest.fixture
def planned(app_url: str, demo_db: Database, dispatch_day: DispatchDay) -> dict[str, Any]:
    """A second streets crew, and the day planned (demo_db is a copy of it): the plan as the
    API answered it."""
    return copy.deepcopy(dispatch_day.plan)


def _plan(url: str, db: Database) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/v1/plans/{DAY}", headers=_bearer(db), timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _route_ids(plan: dict[str, Any], crew: str) -> list[int]:
    route = next(r for r in plan["routes"] if r["crew"] == crew)
    return [s["work_order_id"] for s in route["stops"]]


@dataclass
class Desk:
    """One test's dispatcher's desk: the app, the demo dispatcher, and the planned day."""

    url: str
    db: Database
    browser: Any
    who: DemoSignin
    plan: dict[str, Any]
    shots: Path

    @contextmanager
    def page(self, *, expected: str = "", **options: Any) -> Iterator[tuple[Any, Recorder]]:
        """/dispatch opened unsigned, signed in where it sends us, then opened afresh with a
        recorder; ``options``: the browser context's (a time zone, say). On leaving, the page
        must have logged no error or CSP violation (but one holding ``expected``, a refusal
        the test asks for) and opened no dialog."""
        context = self.browser.new_context(viewport=DESKTOP, **options)
        try:
            signin = context.new_page()
            signin.goto(f"{self.url}/dispatch?date={DAY}")
            assert urlsplit(signin.url).path == "/login"
            signin.get_by_label("Name").fill(self.who.name)
            signin.get_by_label("Password").fill(self.who.password)
            signin.get_by_role("button", name="Sign in").click()
            signin.wait_for_url(re.compile(r".*/dispatch\?date="))
            signin.close()
            page = context.new_page()
            recorder = record(page)
            page.goto(f"{self.url}/dispatch?date={DAY}")
            try:
                page.wait_for_selector(
                    "#dispatch-map[data-state=ready]", state="attached", timeout=30_000
                )
            except Exception as exc:
                raise AssertionError(f"the page did not get ready: {recorder.console}") from exc
            yield page, recorder
            assert [p for p in recorder.problems() if not (expected and expected in p)] == []
            assert recorder.dialogs == []
        finally:
            context.close()

    def shot(self, page: Any, name: str) -> None:
        keep_shot(screenshot(page, self.shots, name))

    def bearer(self, role: str = "dispatcher", **kw: Any) -> dict[str, str]:
        return _bearer(self.db, role, **kw)

    def board(self) -> dict[str, Any]:
        """The whole board, as the API answers it now."""
        return _board(self.url, self.db)

    def current_plan(self) -> dict[str, Any]:
        """The day's plan, as the API answers it now."""
        return _plan(self.url, self.db)

    def route(self, crew: str) -> list[int]:
        """``crew``'s stops on the planned day (as planned, before the test moved anything)."""
        return _route_ids(self.plan, crew)


@pytest.fixture
def desk(
    browser: Any,
    app_url: str,
    demo_db: Database,
    dispatcher: DemoSignin,
    planned: dict[str, Any],
    tmp_path: Path,
) -> Desk:
    return Desk(app_url, demo_db, browser, dispatcher, planned, tmp_path)


def open_popup(page: Any, job: int) -> Any:
    """Open ``job``'s popup from its marker; return the popup once it shows."""
    page.evaluate("(id) => window.dispatchPage.openPopup(id)", job)
    popup = page.locator(".leaflet-popup .dispatch-popup")
    popup.wait_for(timeout=15_000)
    return popup


def crew_jobs(page: Any, crew: str) -> list[int]:
    """The work order ids the crews' list shows under ``crew``, in route order."""
    ids = page.locator(f'#crew-list > li[data-crew="{crew}"] li.job').evaluate_all(
        "(items) => items.map((i) => Number(i.dataset.job))"
    )
    return [int(i) for i in ids]


def whole_board_reads(recorder: Recorder, since: int) -> list[str]:
    """Requests for the whole board (no id= or crew=) among the page's requests from ``since``."""
    return [
        u
        for u in recorder.requests[since:]
        if "/api/v1/dispatch/board" in u and "id=" not in u and "crew=" not in u
    ]


def tag_markers(page: Any, ids: list[int]) -> None:
    """Mark the markers of ``ids``: a marker drawn anew since has lost the mark."""
    page.evaluate(
        "(ids) => ids.forEach((id) => { window.dispatchPage.state.markers.get(id).kept = 1; })",
        ids,
    )


def still_tagged(page: Any, ids: list[int]) -> list[int]:
    return [
        int(i)
        for i in page.evaluate(
            "(ids) => ids.filter((id) => window.dispatchPage.state.markers.get(id)?.kept === 1)",
            ids,
        )
    ]


# The pairs of cluster bubbles in view whose rings overlap: [width, width, centres apart] (px).
OVERLAPPING_RINGS = """() => {
    const rings = [...document.querySelectorAll(".crew-cluster-icon .crew-cluster")]
        .map((e) => e.getBoundingClientRect());
    const out = [];
    rings.forEach((a, i) => rings.slice(i + 1).forEach((b) => {
        const apart = Math.hypot(a.x + a.width / 2 - b.x - b.width / 2,
            a.y + a.height / 2 - b.y - b.height / 2);
        if (apart < (a.width + b.width) / 2) out.push([a.width, b.width, Math.round(apart)]);
    }));
    return out;
}"""


def complete_as_crew(url: str, crew: dict[str, str], job: int) -> None:
    """The crew starts the job and completes it with an after-photo, through the API."""
    with httpx.Client(base_url=url, headers=crew, timeout=30) as client:
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


def wait_for(check: Any, *, timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_the_routes_and_the_queue_are_on_the_map_in_crew_colours(desk: Desk) -> None:
    # One job back to the queue, with the reason a dispatcher gave.
    queued_id = desk.route("lighting")[0]
    body = {
        "plan_version": desk.plan["version"],
        "work_order_ids": [queued_id],
        "to_crew": None,
        "reason": "waiting for a lift truck",
    }
    r = httpx.post(
        f"{desk.url}/api/v1/plans/{DAY}/moves", json=body, headers=desk.bearer(), timeout=60
    )
    assert r.status_code == 200, r.text
    planned = r.json()
    with desk.page() as (page, _):
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
            # Each stop's marker carries its number on the route.
            numbers = page.evaluate(
                "(ids) => ids.map((id) => window.dispatchPage.state.markers.get(id)"
                ".options.icon.options.html.textContent)",
                stops,
            )
            assert numbers == [str(s["seq"]) for s in route["stops"]]
            # The crew's day in numbers: stops, load and free time.
            facts = page.locator(
                f'#crew-list > li[data-crew="{route["crew"]}"] .crew-facts'
            ).inner_text()
            assert re.fullmatch(
                rf"{len(stops)} stops · load \d+ h \d\d · free \d+ h \d\d", facts
            ), facts
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
        desk.shot(page, "dispatch-day")
        problems = audit(page, desk.url)
        assert problems == [], "\n".join(problems)


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
    desk: Desk,
) -> None:
    board = desk.board()
    pair = _lonely_pair(board, desk.route("streets"))
    with desk.page() as (page, recorder):
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
        assert desk.current_plan()["version"] == desk.plan["version"]
        desk.shot(page, "dispatch-preview")
        # Jobs of crews the move leaves alone: their markers are not drawn anew.
        untouched = [j["id"] for j in board["jobs"] if j["crew"] not in ("streets", "streets-2")]
        assert untouched
        tag_markers(page, untouched)
        since = len(recorder.requests)
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
        desk.shot(page, "dispatch-moved")
        # The plan API agrees.
        plan = desk.current_plan()
        assert set(pair) <= set(_route_ids(plan, "streets-2"))
        assert not set(pair) & set(_route_ids(plan, "streets"))
        assert plan["version"] == desk.plan["version"] + 1
        # The page drew the move from its answer and read back only the two crews' work (the
        # move's own live events included), never the whole board; the rest stayed as drawn.
        # Playwright hands the page's requests to the recorder only while it is called, never
        # during a Python sleep: so wait in the page.
        for _ in range(150):
            if any("/api/v1/dispatch/board" in u for u in recorder.requests[since:]):
                break
            page.wait_for_timeout(200)
        partial = [u for u in recorder.requests[since:] if "/api/v1/dispatch/board" in u]
        assert partial, "the page read back the changed crews"
        page.wait_for_timeout(1000)  # the live events' own read-back, gathered after the answer's
        assert whole_board_reads(recorder, since) == []
        assert still_tagged(page, untouched) == untouched
        assert page.evaluate("window.dispatchPage.state.board.version") == plan["version"]


def test_two_dispatchers_one_sees_the_others_move_live_then_its_stale_move_is_explained(
    desk: Desk,
) -> None:
    first, second = desk.route("streets")[:2]
    stale = "409 (Conflict)"  # B's page logs the refused commit
    with desk.page() as (page_a, _), desk.page(expected=stale) as (page_b, _):
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
        assert f"looked at version {desk.plan['version']}" in problem.inner_text()
        desk.shot(page_b, "dispatch-conflict")
        plan = desk.current_plan()
        assert first in _route_ids(plan, "streets")
        assert second in _route_ids(plan, "streets-2")


def test_a_job_a_crew_completes_through_the_api_leaves_the_map_live(desk: Desk) -> None:
    job = desk.route("streets")[0]
    crew = desk.bearer("crew", name="sam-streets", crew="streets")
    with desk.page() as (page, recorder):
        assert page.locator(f'#crew-list li[data-job="{job}"]').count() == 1
        others = [
            j["id"]
            for j in page.evaluate("window.dispatchPage.state.board.jobs")
            if j["crew"] != "streets"
        ]
        tag_markers(page, others)
        total = page.evaluate("window.dispatchPage.state.board.jobs.length")
        since = len(recorder.requests)
        complete_as_crew(desk.url, crew, job)
        wait_for(
            lambda: (
                page.locator(f'#crew-list li[data-job="{job}"]').count() == 0
                and not page.evaluate("(id) => window.dispatchPage.state.markers.has(id)", job)
            ),
            timeout_s=20,
            what="the completed job off the list and the map",
        )
        # Read and redrawn: that job and its crew's route only, not the city's backlog.
        assert whole_board_reads(recorder, since) == []
        assert still_tagged(page, others) == others
        shown = page.locator("#dispatch-status").inner_text()
        assert shown.startswith(f"{total - 1} of {total - 1} ")


def test_a_merge_from_the_popup_and_its_undo_put_the_reports_back(desk: Desk) -> None:
    board = desk.board()
    by_category: dict[str, list[dict[str, Any]]] = {}
    for j in board["jobs"]:
        if j["status"] != "in_progress":
            by_category.setdefault(j["category"], []).append(j)
    keep, fold = next(v for v in by_category.values() if len(v) >= 2)[:2]

    def reports(incident: int) -> list[str]:
        r = httpx.get(
            f"{desk.url}/api/v1/staff/incidents/{incident}/reports",
            headers=desk.bearer(),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return sorted(x["tracking_id"] for x in r.json()["reports"])

    before = {i: reports(i) for i in (keep["incident_id"], fold["incident_id"])}
    with desk.page() as (page, _):
        popup = open_popup(page, keep["id"])
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
        desk.shot(page, "dispatch-merged")
        undo.click()
        wait_for(
            lambda: page.locator(f'li[data-job="{fold["id"]}"]').count() == 1,
            what="the folded job back on the lists",
        )
        assert {i: reports(i) for i in before} == before


def test_choosing_a_ward_leaves_only_its_jobs_on_the_map_and_in_the_lists(desk: Desk) -> None:
    with desk.page() as (page, _):
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
        desk.shot(page, "dispatch-ward")
        # The search, by a tracking number, narrows map and lists to that job.
        page.get_by_label("Ward").select_option("")
        hay = [f"{j['tracking_id'] or ''} {j['address'] or ''}".lower() for j in board["jobs"]]
        job = next(
            j
            for j in board["jobs"]
            if j["tracking_id"] and sum(j["tracking_id"].lower() in h for h in hay) == 1
        )
        page.get_by_label("Tracking number or address").fill(job["tracking_id"])
        assert page.evaluate("[...window.dispatchPage.state.markers.keys()]") == [job["id"]]
        listed = page.locator("#crew-list li.job, #queue-list li.job")
        assert listed.evaluate_all("(l) => l.map((i) => Number(i.dataset.job))") == [job["id"]]


def test_a_residents_markup_is_shown_as_text_in_popups_and_lists(desk: Desk) -> None:
    job = desk.route("streets")[0]
    with desk.db.session() as s:
        s.execute(
            text(
                "UPDATE reports SET description = :evil, address = :evil "
                "WHERE incident_id = (SELECT incident_id FROM work_orders WHERE id = :id)"
            ),
            {"evil": EVIL, "id": job},
        )
    with desk.page() as (page, recorder):
        line = page.locator(f'#crew-list button.job-line[data-job="{job}"]')
        assert EVIL in line.inner_text()
        popup = open_popup(page, job)
        assert popup.locator(".description").inner_text() == EVIL
        assert popup.locator(".address").inner_text() == EVIL
        assert page.locator("img[src=x]").count() == 0
        assert recorder.dialogs == []


def test_a_lasso_around_two_jobs_selects_those_two(desk: Desk) -> None:
    board = desk.board()
    pair = _lonely_pair(board, desk.route("streets"))
    with desk.page() as (page, _):
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


def test_cluster_bubbles_ring_the_crews_colours_and_the_status_filter_speaks_words(
    desk: Desk,
) -> None:
    with desk.page() as (page, _):
        # Zoomed out over the whole city, jobs crowd into bubbles.
        page.evaluate(
            """() => {
                const map = window[document.getElementById("dispatch-map").dataset.map];
                map.setZoom(11, { animate: false });
            }"""
        )
        page.locator(".crew-cluster-icon").first.wait_for(timeout=15_000)
        # Each bubble: the count of its jobs, and a ring whose longest arc, from the top, is in
        # the colour of the crew with most of them (grey for the queue).
        bubbles = page.evaluate(
            """() => {
                const p = window.dispatchPage;
                const root = document.getElementById("dispatch-map");
                const cluster = window[root.dataset.cluster];
                const colours = new Map(p.state.board.crews.map((c) => [c.code, c.colour]));
                const out = [];
                cluster._featureGroup.eachLayer((layer) => {
                    if (!layer.getAllChildMarkers || !layer._icon) return;
                    const counts = new Map();
                    for (const m of layer.getAllChildMarkers()) {
                        const crew = p.state.byId.get(m.jobId).crew ?? "";
                        counts.set(crew, (counts.get(crew) || 0) + 1);
                    }
                    const most = Math.max(...counts.values());
                    const top = [...counts].filter(([, n]) => n === most).map(([c]) => c);
                    const ring = layer._icon.querySelector(".crew-cluster");
                    out.push({
                        count: layer.getChildCount(),
                        shown: ring.innerText.trim(),
                        ring: getComputedStyle(ring).backgroundImage,
                        top: top.map((c) => (c ? colours.get(c) : "#4b5563")),
                        crews: counts.size,
                    });
                });
                return out;
            }"""
        )
        assert bubbles, "some jobs crowd at this zoom"
        for b in bubbles:
            assert b["shown"] == str(b["count"])
            # (crews with as many jobs: any of them first)
            firsts = [f"conic-gradient({_rgb(c)} 0%" for c in b["top"]]
            assert any(b["ring"].startswith(f) for f in firsts), b
        assert any(b["crews"] > 1 for b in bubbles), "a bubble holding two crews' jobs"
        # Bubbles sit side by side, from the whole city in one view to a ward: no ring drawn
        # over another's (their circles apart).
        overlapping = {}
        for zoom in (11, 12, 13, 14):
            page.evaluate(
                "(z) => window[document.getElementById('dispatch-map').dataset.map]"
                ".setZoom(z, { animate: false })",
                zoom,
            )
            page.wait_for_timeout(300)
            overlapping[zoom] = page.evaluate(OVERLAPPING_RINGS)
        assert overlapping == {11: [], 12: [], 13: [], 14: []}
        page.evaluate(
            "() => window[document.getElementById('dispatch-map').dataset.map]"
            ".setZoom(11, { animate: false })"
        )
        legend = page.locator("#cluster-legend")
        assert legend.is_visible()
        assert "crew's share in the crew's colour" in legend.inner_text()
        desk.shot(page, "dispatch-clusters")
        # The status filter lists words, and filters by them.
        status = page.get_by_label("Status")
        words = status.locator("option").all_inner_texts()
        assert "Work in progress" in words
        assert "Scheduled" in words
        assert "in_progress" not in words
        assert "scheduled" not in words
        board = page.evaluate("window.dispatchPage.state.board")
        status.select_option(label="Scheduled")
        expected = {j["id"] for j in board["jobs"] if j["status"] == "scheduled"}
        assert expected
        assert set(page.evaluate("[...window.dispatchPage.state.markers.keys()]")) == expected
        # The popup names the status in the same words.
        popup = open_popup(page, sorted(expected)[0])
        assert popup.locator(".job-status").inner_text().startswith("Scheduled")


def test_an_appointment_is_typed_and_shown_on_the_citys_clocks_not_the_browsers(desk: Desk) -> None:
    job = desk.route("streets")[0]
    # A dispatcher whose laptop is set to Tokyo, for a city on Chicago's clocks.
    with desk.page(timezone_id="Asia/Tokyo") as (page, _):
        popup = open_popup(page, job)
        # The fields have visible labels, and say whose clocks they read.
        fields = popup.locator("fieldset.appointment")
        assert "America/Chicago" in fields.locator("legend").inner_text()
        start, end = popup.get_by_label("Starts from"), popup.get_by_label("Starts by")
        assert start.is_visible()
        assert end.is_visible()
        assert popup.locator("label", has_text="Starts from").is_visible()
        start.fill("2026-06-01T09:00")
        end.fill("2026-06-01T11:00")
        popup.get_by_role("button", name="Set", exact=True).click()
        shown = page.locator(".leaflet-popup .dispatch-popup .appointment-now")
        shown.wait_for(timeout=20_000)
        # The city's 09:00 (14:00 UTC), not Tokyo's.
        board = desk.board()
        window = next(j["appointment"] for j in board["jobs"] if j["id"] == job)
        assert window == ["2026-06-01T09:00:00-05:00", "2026-06-01T11:00:00-05:00"]
        assert "09:00" in shown.inner_text()
        assert "11:00" in shown.inner_text()
        # The fields show the booked window back on the city's clocks.
        popup = page.locator(".leaflet-popup .dispatch-popup")
        assert popup.get_by_label("Starts from").input_value() == "2026-06-01T09:00"
        desk.shot(page, "dispatch-appointment")


def test_a_crews_cant_do_reason_and_kept_note_and_photo_show_in_the_jobs_popup(desk: Desk) -> None:
    cant, kept = desk.route("streets")[:2]
    crew = desk.bearer("crew", name="sam-streets", crew="streets")
    with desk.page() as (page, _):
        with httpx.Client(base_url=desk.url, headers=crew, timeout=30) as client:
            version = client.get(f"/api/v1/work-orders/{cant}").json()["version"]
            r = client.post(
                f"/api/v1/work-orders/{cant}/cant-do",
                json={"reason": "no_access", "note": "Gate locked", "expected_version": version},
            )
            assert r.status_code == 200, r.text
            r = client.post(
                "/api/v1/crew/kept",
                data={
                    "work_order_id": str(kept),
                    "action": "complete",
                    "note": "Pothole filled, <b>cold</b> patch",
                    "refusal": "the job went to another crew",
                },
                files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
            )
            assert r.status_code == 201, r.text
        # Live: the job the crew cannot do leaves its list for the queue, with the reason.
        wait_for(
            lambda: page.locator(f'#queue-list li.job[data-job="{cant}"]').count() == 1,
            timeout_s=20,
            what="the can't-do job in the queue",
        )
        assert page.locator(f'#crew-list li[data-job="{cant}"]').count() == 0
        popup = open_popup(page, cant)
        assert (
            popup.locator(".cant-do").inner_text()
            == "The crew can't do it: no access to the site: Gate locked"
        )
        # The other job's popup: what the crew kept — its note (as text), the refusal, the photo.
        popup = open_popup(page, kept)
        note = popup.locator(".kept-note")
        note.wait_for(timeout=15_000)
        assert note.inner_text() == "Pothole filled, <b>cold</b> patch"
        assert "streets" in popup.locator(".kept-when").inner_text()
        assert popup.locator(".kept-refusal").inner_text() == (
            "Refused: the job went to another crew"
        )
        photo = popup.get_by_role("img", name="Photo kept by streets")
        wait_for(
            lambda: photo.evaluate("(i) => i.complete && i.naturalWidth > 0"),
            what="the kept photo loaded",
        )
        desk.shot(page, "dispatch-kept")
        # The popup with its labelled fields, the kept photo and the reasons: nothing serious.
        problems = audit(page, desk.url)
        assert problems == [], "\n".join(problems)


def test_the_board_answers_only_the_asked_for_jobs_and_crews_and_refuses_bad_ones(
    app_url: str, demo_db: Database, planned: dict[str, Any]
) -> None:
    whole = _board(app_url, demo_db)
    streets = _route_ids(planned, "streets")
    other = next(j["id"] for j in whole["jobs"] if j["crew"] != "streets")
    with httpx.Client(base_url=app_url, headers=_bearer(demo_db), timeout=30) as client:
        r = client.get(
            "/api/v1/dispatch/board",
            params=[("date", str(DAY)), ("crew", "streets"), ("id", str(other))],
        )
        assert r.status_code == 200, r.text
        part = r.json()
        assert part["partial"] is True
        # The crew's route with its stops and the one job asked for by id; only that crew's
        # route; every crew's load; the plan's version.
        ids = {j["id"] for j in part["jobs"]}
        expected = set(streets) | {other}
        assert ids == expected
        assert [x["crew"] for x in part["routes"]] == ["streets"]
        assert {c["code"] for c in part["crews"]} == {c["code"] for c in whole["crews"]}
        assert part["version"] == whole["version"]
        assert part["wards"] == []
        for bad in ([("id", "x")], [("id", "0")], [("crew", "not a code!")]):
            r = client.get("/api/v1/dispatch/board", params=[("date", str(DAY)), *bad])
            assert r.status_code == 422, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


def test_keys_alone_send_a_job_back_to_the_queue_with_focus_shown(desk: Desk) -> None:
    job = desk.route("streets")[-1]
    with desk.page() as (page, _):
        page.locator(f'#crew-list button.job-line[data-job="{job}"]').focus()
        page.keyboard.press("Enter")  # the row is a toggle button: Enter selects it
        assert page.locator("#selection-count").inner_text() == "1 selected"
        page.keyboard.press("q")
        dialog = page.locator("dialog#preview")
        dialog.locator('.preview-crew[data-crew="streets"]').wait_for(timeout=60_000)
        # The preview leaves the job off the crew's route; the commit button has the focus,
        # outlined as keyboard focus is.
        after = dialog.locator('.preview-crew[data-crew="streets"] li')
        assert job not in [int(x) for x in after.evaluate_all("(l) => l.map((i) => i.dataset.job)")]
        commit = page.get_by_role("button", name="Commit the move")
        assert commit.evaluate("(b) => b === document.activeElement && b.matches(':focus-visible')")
        assert commit.evaluate("(b) => getComputedStyle(b).outlineStyle") == "solid"
        page.keyboard.press("Enter")
        wait_for(
            lambda: page.locator(f'#queue-list li.job[data-job="{job}"]').count() == 1,
            timeout_s=60,
            what="the job in the queue's list",
        )
        assert job not in crew_jobs(page, "streets")
        # The plan and the board agree: on no route, waiting in the queue for the dispatcher.
        plan = desk.current_plan()
        assert all(job not in _route_ids(plan, r["crew"]) for r in plan["routes"])
        queued = next(j for j in desk.board()["jobs"] if j["id"] == job)
        assert (queued["crew"], queued["queued"]) == (None, "dispatcher")


def test_the_queue_is_a_map_layer_of_its_own_that_the_dispatcher_can_switch_off(
    desk: Desk,
) -> None:
    queued_id = desk.route("lighting")[0]
    body = {
        "plan_version": desk.plan["version"],
        "work_order_ids": [queued_id],
        "to_crew": None,
        "reason": "waiting for a lift truck",
    }
    r = httpx.post(
        f"{desk.url}/api/v1/plans/{DAY}/moves", json=body, headers=desk.bearer(), timeout=60
    )
    assert r.status_code == 200, r.text
    # [jobs waiting in the queue, of them with a marker, all markers] as the page has them.
    count = """() => {
        const s = window.dispatchPage.state;
        const queued = s.board.jobs.filter((j) => !j.crew);
        return [queued.length, queued.filter((j) => s.markers.has(j.id)).length, s.markers.size];
    }"""
    with desk.page() as (page, _):
        queued, queued_on_map, markers = page.evaluate(count)
        assert queued >= 1
        assert queued_on_map == queued
        rows = page.locator("#queue-list li.job").count()
        assert rows == queued
        layer = page.get_by_label("Queue on the map")
        assert layer.is_checked()
        layer.uncheck()
        wait_for(lambda: page.evaluate(count)[1] == 0, what="the queue's markers gone")
        # The crews' work stays on the map, and the queue's list stays beside it.
        assert page.evaluate(count)[2] == markers - queued
        assert page.locator("#queue-list li.job").count() == rows
        desk.shot(page, "dispatch-queue-layer-off")
        # Asking for a queued job's popup from its row turns the layer on again.
        page.locator(f'#queue-list button.job-line[data-job="{queued_id}"]').dblclick()
        page.locator(".leaflet-popup .dispatch-popup").wait_for(timeout=15_000)
        assert layer.is_checked()
        assert page.evaluate(count)[1] == queued


def test_a_change_by_someone_else_redraws_an_open_popup_and_keeps_what_was_typed(
    desk: Desk,
) -> None:
    job = desk.route("streets")[0]
    with desk.page() as (page, _):
        popup = open_popup(page, job)
        merge_into = popup.get_by_label("Merge incident number … into this one")
        merge_into.fill("4242")
        # Another dispatcher locks the stop meanwhile: the popup shows it as it is now.
        r = httpx.post(
            f"{desk.url}/api/v1/plans/{DAY}/stops/{job}/lock",
            json={"plan_version": desk.current_plan()["version"]},
            headers=desk.bearer(),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        page.locator(".leaflet-popup .dispatch-popup").get_by_role(
            "button", name="Unlock"
        ).wait_for(timeout=20_000)
        # ... and what the dispatcher was typing is still there.
        assert (
            page.locator(".leaflet-popup .dispatch-popup")
            .get_by_label("Merge incident number … into this one")
            .input_value()
            == "4242"
        )


# Zoomed out, the map where a bubble holds the job, and the map settled (no zoom, pan or
# markercluster animation under way): [job id, its bubble's jobs, the map's zoom].
ZOOM_OUT_ON_A_BUBBLE = """(zoom) => {
    const root = document.getElementById("dispatch-map");
    const map = window[root.dataset.map];
    const cluster = window[root.dataset.cluster];
    for (const [id, m] of window.dispatchPage.state.markers) {
        let c = m.__parent;
        while (c && c._zoom > zoom) c = c.__parent;
        if (!c || c._zoom !== zoom || c.getChildCount() < 2 || c.getChildCount() > 6) continue;
        map.setView(c.getLatLng(), zoom, { animate: false });
        return [id, c.getAllChildMarkers().map((x) => x.jobId), map.getZoom()];
    }
    return null;
}"""
SETTLED = """() => {
    const root = document.getElementById("dispatch-map");
    const map = window[root.dataset.map];
    const cluster = window[root.dataset.cluster];
    return !map._animatingZoom && !map._panAnim?._inProgress && !cluster._inZoomAnimation;
}"""
# The popup fully shown (Leaflet fades a popup in).
FADED_IN = '() => getComputedStyle(document.querySelector(".leaflet-popup")).opacity === "1"'
POPUP_JOB = (
    """() => document.querySelector(".leaflet-popup .dispatch-popup h2")?.textContent ?? null"""
)


def click_on_map(page: Any, job: int, *, where: str, until: str, what: str) -> None:
    """Click, with the mouse, the place of ``where`` (a JS expression of the job's marker ``m``
    and the ``cluster``: the marker or its bubble), as the map projects it (an icon's box can
    still be in a CSS transition on a busy machine); click again, as a dispatcher would, while
    ``until`` (a JS function of the job's id) is not true a moment later."""
    place = f"""(id) => {{
        const root = document.getElementById("dispatch-map");
        const map = window[root.dataset.map];
        const cluster = window[root.dataset.cluster];
        const m = window.dispatchPage.state.markers.get(id);
        const p = map.latLngToContainerPoint(({where}).getLatLng());
        const box = map.getContainer().getBoundingClientRect();
        return [box.x + p.x, box.y + p.y];
    }}"""
    for _ in range(5):
        page.wait_for_function(SETTLED, timeout=10_000)
        page.mouse.click(*page.evaluate(place, job))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if page.evaluate(until, job):
                return
            time.sleep(0.1)
    raise AssertionError(f"not after 5 clicks: {what}")


def test_a_jobs_popup_asked_for_from_a_bubble_opens_once_and_stays_open(desk: Desk) -> None:
    with desk.page() as (page, _):
        found = page.evaluate(ZOOM_OUT_ON_A_BUBBLE, 13)
        assert found, "some jobs share a bubble at zoom 13"
        job, bubble, zoom = found
        page.wait_for_function(SETTLED, timeout=10_000)
        # The popup's job asked for from its row (a double click), its marker in a bubble.
        assert len(bubble) >= 2
        assert not page.evaluate(
            "(id) => Boolean(window.dispatchPage.state.markers.get(id)._icon)", job
        )
        page.evaluate(
            """() => { window.dispatchPage.opened = 0;
                const map = window[document.getElementById("dispatch-map").dataset.map];
                map.on("popupopen", () => { window.dispatchPage.opened += 1; }); }"""
        )
        page.locator(
            f'#crew-list button.job-line[data-job="{job}"], '
            f'#queue-list button.job-line[data-job="{job}"]'
        ).first.dblclick()
        page.locator(".leaflet-popup .dispatch-popup").wait_for(timeout=15_000)
        # The map has zoomed in to where the job stands alone ...
        assert page.evaluate(
            "(id) => { const m = window.dispatchPage.state.markers.get(id);"
            " return Boolean(m._icon) && m.isPopupOpen(); }",
            job,
        )
        assert (
            page.evaluate("window[document.getElementById('dispatch-map').dataset.map].getZoom()")
            > zoom
        )
        # ... and once it has settled the popup is still open, on that job, opened once (no
        # flash of a popup that closes and opens again).
        page.wait_for_timeout(1_000)
        page.wait_for_function(SETTLED, timeout=10_000)
        assert (page.evaluate(POPUP_JOB) or "").startswith(f"#{job} ·")
        assert page.evaluate("window.dispatchPage.opened") == 1
        desk.shot(page, "dispatch-popup-from-bubble")


def test_a_popup_on_a_spread_bubble_stays_open_when_a_live_change_takes_a_job_off_the_map(
    desk: Desk,
) -> None:
    crew = desk.bearer("crew", name="sam-streets", crew="streets")
    with desk.page() as (page, _):
        # At zoom 15 (the last one with bubbles) the dispatcher spreads a bubble with a click
        # and opens one of its jobs' popup with another.
        found = page.evaluate(ZOOM_OUT_ON_A_BUBBLE, 15)
        assert found, "some jobs share a bubble at zoom 15"
        job, bubble, zoom = found
        click_on_map(
            page,
            job,
            where="cluster.getVisibleParent(m)",
            until="(id) => Boolean(window.dispatchPage.state.markers.get(id)._icon)",
            what="the bubble spread",
        )
        click_on_map(
            page,
            job,
            where="m",
            until="(id) => window.dispatchPage.state.markers.get(id).isPopupOpen()",
            what="the job's popup open",
        )
        popup = page.locator(".leaflet-popup .dispatch-popup")
        assert (page.evaluate(POPUP_JOB) or "").startswith(f"#{job} ·")
        popup.get_by_label("Why on hold").fill("gas leak next door")
        # A crew completes a job elsewhere: its marker leaves the map live, which gathers
        # every spread bubble (markercluster does so on any change) and closes the popup.
        done = next(j for j in desk.route("streets") if j not in bubble)
        complete_as_crew(desk.url, crew, done)
        wait_for(
            lambda: not page.evaluate("(id) => window.dispatchPage.state.markers.has(id)", done),
            timeout_s=20,
            what="the completed job off the map",
        )
        # The popup is open again on the same job, its bubble spread at the dispatcher's
        # zoom, with what was typed in it.
        page.wait_for_function(
            "(id) => window.dispatchPage.state.markers.get(id)?.isPopupOpen()",
            arg=job,
            timeout=10_000,
        )
        page.wait_for_function(SETTLED, timeout=10_000)
        assert (page.evaluate(POPUP_JOB) or "").startswith(f"#{job} ·")
        assert (
            page.evaluate("window[document.getElementById('dispatch-map').dataset.map].getZoom()")
            == zoom
        )
        assert popup.get_by_label("Why on hold").input_value() == "gas leak next door"
        page.wait_for_function(FADED_IN, timeout=5_000)
        desk.shot(page, "dispatch-popup-kept-on-a-spread-bubble")


def test_shift_click_adds_to_the_selection_and_the_popup_locks_a_stop_and_holds_a_job(
    desk: Desk,
) -> None:
    first, second, third = desk.route("streets")[:3]

    def row(job: int) -> Any:
        return page.locator(f'#crew-list button.job-line[data-job="{job}"]')

    def stop(job: int) -> dict[str, Any]:
        plan = desk.current_plan()
        return next(s for r in plan["routes"] for s in r["stops"] if s["work_order_id"] == job)

    with desk.page() as (page, _):
        row(first).click()
        row(second).click(modifiers=["Shift"])
        assert page.locator("#selection-count").inner_text() == "2 selected"
        assert row(first).get_attribute("aria-pressed") == "true"
        assert row(second).get_attribute("aria-pressed") == "true"
        row(first).click(modifiers=["Shift"])  # shift-click again takes it out
        assert page.locator("#selection-count").inner_text() == "1 selected"
        assert row(first).get_attribute("aria-pressed") == "false"
        # Lock a stop in place from its popup: the plan says so, the popup offers the unlock.
        assert not stop(first)["locked"]
        open_popup(page, first).get_by_role("button", name="Lock in place").click()
        page.locator(".leaflet-popup .dispatch-popup").get_by_role(
            "button", name="Unlock"
        ).wait_for(timeout=20_000)
        assert stop(first)["locked"]
        page.locator(".leaflet-popup-close-button").click()
        page.locator(".leaflet-popup").wait_for(state="detached", timeout=10_000)
        # Put another job on hold with a reason: the work order is on hold, the popup offers
        # to resume it.
        popup = open_popup(page, third)
        popup.get_by_label("Why on hold").fill("waiting for the gas company")
        popup.get_by_role("button", name="Put on hold").click()
        page.locator(".leaflet-popup .dispatch-popup").get_by_role(
            "button", name="Resume"
        ).wait_for(timeout=20_000)
        held = next(j for j in desk.board()["jobs"] if j["id"] == third)
        assert held["status"] == "on_hold"
        desk.shot(page, "dispatch-held")
