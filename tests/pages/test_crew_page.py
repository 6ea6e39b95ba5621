"""The crew's page (/crew) in headless Chromium at tablet size (800×1280), as the demo crew
user of the streets crew uses it on the demo city's planned Monday: the stops in plan order
with their ETAs and the route line; completing a stop with an after-photo (a file chooser
stands in for the camera) closes the incident and mails the resident the photo; "can't do"
puts the job in the dispatcher's queue with the reason; a job a dispatcher moves onto the
crew shows up without a reload; two completions taken offline land once each, in order, even
when the first answers are lost and the queue is sent again; another crew's route and jobs
are refused; a resident's markup is shown as text. Screenshots go to the test's folder and
the key ones to $GEO311_SCREENSHOTS when it is set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dispatch.dayplans import commands
from fixtures.demo_users import DemoSignin, ensure_demo_signins
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.settings import RoutingSettings, Settings
from layers import service as layers_service
from tests.conftest import DemoTemplates
from tests.maps.live import Recorder, keep_shot, record, screenshot, serve
from tests.pages.test_map_page import EVIL, PHONE, TABLET, audit
from tests.support import (
    CHEAP_SIGNIN,
    SmtpSink,
    jpeg,
    notify_settings,
    smtp_sink,
    staff_token,
    wait_until,
)
from work_orders import incidents, lookups
from work_orders.models import Requester

DAY = date(2026, 6, 1)  # the Monday of the demo city's "now"
ROUTING = RoutingSettings(time_limit_s=2.0, replan_time_limit_s=0.5)


@dataclass
class Served:
    url: str
    settings: Settings
    sink: SmtpSink


@pytest.fixture
def served(demo_db: Database, tmp_path: Path) -> Iterator[Served]:
    with smtp_sink() as sink:
        base = notify_settings(tmp_path, sink.port)

        def settings(port: int) -> Settings:
            return base.model_copy(
                update={"port": port, "routing": ROUTING, "signin": CHEAP_SIGNIN}
            )

        with serve(demo_db, settings) as url:
            yield Served(url=url, settings=settings(0), sink=sink)


# The demo city with its demo accounts and its Monday planned for every crew: built once per
# session (per xdist worker), cloned per test.
CREW_DAY = "geo311_crew_day_template"


@pytest.fixture(scope="session")
def crew_day(demo_templates: DemoTemplates) -> DemoSignin:
    """Build the planned Monday's template: the demo accounts first, then the plan, as each
    test once did on its own copy of the city; return the demo crew user's sign-in."""

    def build(db: Database) -> DemoSignin:
        found = ensure_demo_signins(db, slug="demo", passwords=Passwords(CHEAP_SIGNIN))
        with db.session() as session:
            jurisdiction = layers_service.get_jurisdiction(session, "demo")
            assert jurisdiction is not None
            commands.make_plan(
                session, jurisdiction_id=jurisdiction.id, day=DAY, routing=ROUTING, actor="test"
            )
        return next(d for d in found if d.role == "crew")

    return demo_templates.build(CREW_DAY, build)


@pytest.fixture
def demo_db(demo_templates: DemoTemplates, crew_day: DemoSignin) -> Iterator[Database]:
    """In this module, the demo city's own fresh copy is one of the planned Monday."""
    with demo_templates.clone(CREW_DAY) as database:
        yield database


@pytest.fixture
def crew_user(demo_db: Database, crew_day: DemoSignin) -> DemoSignin:
    """The demo crew user (of the streets crew), whose account the planned Monday holds; each
    test signs in with it on its own."""
    return crew_day


@pytest.fixture
def planned(demo_db: Database) -> None:
    """The demo city's Monday, planned for every crew: demo_db is a copy of it."""


def api(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def route_of(url: str, db: Database, crew: str = "streets") -> dict[str, Any]:
    with api(url, staff_token(db, "dispatcher", "dispatcher-test")) as client:
        r = client.get(f"/api/v1/plans/{DAY.isoformat()}/crews/{crew}")
        assert r.status_code == 200, r.text
        return dict(r.json()["routes"][0]) if r.json()["routes"] else {"stops": []}


def open_crew_page(
    browser: Any, url: str, who: DemoSignin, **context_options: Any
) -> tuple[Any, Any, Recorder]:
    """Sign in on /login as a crew would and open the crew page on the planned Monday."""
    context = browser.new_context(viewport=TABLET, **context_options)
    page = context.new_page()
    recorder = record(page)
    page.goto(f"{url}/crew?date={DAY.isoformat()}")
    assert "/login" in page.url
    page.get_by_label("Name").fill(who.name)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/crew?date={DAY.isoformat()}")
    wait_ready(page, recorder)
    return context, page, recorder


def wait_ready(page: Any, recorder: Recorder) -> None:
    try:
        page.wait_for_selector("#crew-page[data-state=ready]", state="attached", timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"the crew page did not get ready: {recorder.console}") from exc


def wait_online_through_worker(page: Any, path: str, timeout_s: float = 10.0) -> None:
    """Wait until a GET of `path` passes through the page's service worker to the server.

    Chromium takes the browser back online for the page and for its service worker one after
    the other: a navigation sent at once can still meet an offline worker, which (having no
    copy of a page it never kept) fails it, as a real tablet would while the signal returns.
    """
    import time

    deadline = time.monotonic() + timeout_s
    while not page.evaluate(
        "(p) => fetch(p, {cache: 'no-store'}).then((r) => r.ok, () => false)", path
    ):
        assert time.monotonic() < deadline, f"{path} never reached the server after going online"
        page.wait_for_timeout(100)


def todo(page: Any) -> list[int]:
    ids = page.locator("#stops li.stop").evaluate_all(
        "items => items.map(li => Number(li.dataset.workOrder))"
    )
    return [int(i) for i in ids]


def wait_gone(page: Any, work_order_id: int) -> None:
    """Wait until the stop has left the to-do list."""
    selector = f'#stops li.stop[data-work-order="{work_order_id}"]'
    page.locator(selector).wait_for(state="detached", timeout=20_000)


def chicago_clock(iso: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(iso).astimezone(ZoneInfo("America/Chicago")).strftime("%I:%M %p")


def status_of(db: Database, work_order_id: int) -> tuple[str, str]:
    with db.session() as s:
        row = s.execute(
            text(
                "SELECT w.status, i.status FROM work_orders w JOIN incidents i "
                "ON i.jurisdiction_id = w.jurisdiction_id AND i.id = w.incident_id "
                "WHERE w.id = :w"
            ),
            {"w": work_order_id},
        ).one()
    return str(row[0]), str(row[1])


def photo_file(tmp_path: Path, name: str, colour: tuple[int, int, int]) -> Path:
    path = tmp_path / name
    path.write_bytes(jpeg((320, 240), colour))
    return path


def complete_in_page(page: Any, work_order_id: int, photo: Path, note: str) -> None:
    stop = page.locator(f'#stops li.stop[data-work-order="{work_order_id}"]')
    stop.get_by_role("button", name="Complete").click()
    dialog = page.locator("#complete-dialog")
    dialog.get_by_label("After-photo").set_input_files(str(photo))
    dialog.get_by_label("Resolution").select_option("repaired")
    dialog.get_by_label("Note").fill(note)
    dialog.get_by_role("button", name="Complete").click()


def test_the_crew_sees_its_stops_in_plan_order_with_etas_and_the_route_line(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    route = route_of(served.url, demo_db)
    stops = route["stops"]
    assert len(stops) >= 3, "the streets crew has a day's work on the demo Monday"
    context, page, recorder = open_crew_page(browser, served.url, crew_user)
    try:
        assert todo(page) == [s["work_order_id"] for s in sorted(stops, key=lambda s: s["seq"])]
        for stop in stops:
            item = page.locator(f'#stops li.stop[data-work-order="{stop["work_order_id"]}"]')
            assert item.locator(".stop-number").inner_text() == str(stop["seq"])
            # the ETA in the city's time (America/Chicago), as the plan has it
            assert item.locator(".stop-eta").inner_text() == f"ETA {chicago_clock(stop['eta'])}"
        # the route line and a numbered marker per stop, and the depot, on the map
        assert page.locator("path.route-line").count() == 1
        points = int(page.locator(".folium-map").get_attribute("data-line") or 0)
        assert points == len(route["line"]["coordinates"])
        assert page.locator(".stop-icon").count() == len(stops)
        assert page.locator("path.depot-marker").count() == 1
        # the breaks, on the map where the crew will be and in the list between the stops
        assert page.locator(".break-icon").count() == len(route["breaks"])
        assert page.locator("#stops li.break").count() == len(route["breaks"])
        shot = screenshot(page, tmp_path, "crew-route-tablet")
        keep_shot(shot)
        # tapping a stop on the map selects it in the list, and the list selects on the map
        third = sorted(stops, key=lambda s: s["seq"])[2]
        page.locator(".stop-icon").nth(2).click()
        selected = page.locator("#stops li.stop.selected")
        assert selected.get_attribute("data-work-order") == str(third["work_order_id"])
        first = sorted(stops, key=lambda s: s["seq"])[0]
        page.locator(
            f'#stops li.stop[data-work-order="{first["work_order_id"]}"] .stop-pick'
        ).click()
        # (the popup of stop 3 may still be fading out)
        page.locator(".leaflet-popup-content strong", has_text="1. ").wait_for()
        # the navigate links: a geo: URI and plain coordinates
        geo = page.locator("#stops li.stop").first.get_by_role("link", name="Navigate")
        lon, lat = first["location"]["coordinates"]
        assert geo.get_attribute("href") == f"geo:{lat},{lon}?q={lat},{lon}"
        assert not audit(page, served.url)
        assert not recorder.problems(), recorder.problems()
        # Once loaded, the page works with no connection: the service worker has it all.
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        page.reload()
        wait_ready(page, recorder)
        page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10_000)
        context.set_offline(True)
        page.reload()
        wait_ready(page, recorder)
        assert todo(page) == [s["work_order_id"] for s in sorted(stops, key=lambda s: s["seq"])]
        assert page.locator("path.route-line").count() == 1
        assert "Offline" in page.locator("#crew-net").inner_text()
        offline = screenshot(page, tmp_path, "crew-route-offline-reload")
        keep_shot(offline)
        context.set_offline(False)
        assert recorder.origins() == {served.url}, recorder.origins()
        # Spanish, the same stops (a page the service worker has not kept: it needs the network)
        spanish = f"/crew?date={DAY.isoformat()}&lang=es"
        wait_online_through_worker(page, spanish)
        page.goto(f"{served.url}{spanish}")
        wait_ready(page, recorder)
        assert page.locator("#stops li.stop").first.get_by_role("button", name="Terminar").count()
        keep_shot(screenshot(page, tmp_path, "crew-route-es"))
        # and on a phone: the same page, one column, nothing wider than the screen
        page.set_viewport_size(PHONE)
        page.reload()
        wait_ready(page, recorder)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone = tmp_path / "crew-route-phone.png"
        page.screenshot(path=str(phone))
        keep_shot(phone)
    finally:
        context.close()


def _subscribe(db: Database, incident_id: int, email: str) -> None:
    """A resident who reported the incident and wants to hear when it is fixed."""
    from datetime import UTC, datetime

    from geo311.resident.intake.models import Report
    from geo311.resident.intake.tracking import new_tracking_id

    with db.session() as session:
        jurisdiction = layers_service.get_jurisdiction(session, "demo")
        assert jurisdiction is not None
        incident = lookups.get_incident(
            session, jurisdiction_id=jurisdiction.id, incident_id=incident_id
        )
        requester = Requester(jurisdiction_id=jurisdiction.id, email=email, language="en")
        session.add(requester)
        session.flush()
        report = Report(
            jurisdiction_id=jurisdiction.id,
            tracking_id=new_tracking_id(),
            incident_id=incident_id,
            requester_id=requester.id,
            category_code=incident.category_code,
            description="Deep hole by the bus stop",
            geom=incident.geom,
            location_source="pin",
            channel="api",
            language="en",
            reported_at=datetime.now(UTC),
        )
        session.add(report)
        session.flush()
        incidents.subscribe(
            session,
            jurisdiction_id=jurisdiction.id,
            incident_id=incident_id,
            requester_id=requester.id,
            report_id=report.id,
        )


def test_completing_a_stop_with_a_photo_closes_the_incident_and_mails_the_resident(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    stop = sorted(route_of(served.url, demo_db)["stops"], key=lambda s: s["seq"])[0]
    _subscribe(demo_db, stop["incident_id"], "rosa@example.org")
    with BackgroundWorker(served.settings, demo_db):
        context, page, recorder = open_crew_page(browser, served.url, crew_user)
        try:
            served.sink.wait_for(1, timeout_s=5)  # the "received" notice of the new report
            served.sink.clear()
            complete_in_page(
                page,
                stop["work_order_id"],
                photo_file(tmp_path, "after.jpg", (20, 90, 200)),
                "Filled",
            )
            wait_gone(page, stop["work_order_id"])
            assert (
                page.locator(f'#done li.stop[data-work-order="{stop["work_order_id"]}"]').count()
                == 1
            )
            # off the list at once (queued); then sent, and said so
            page.locator("#crew-log").get_by_text("Sent: Complete at stop 1.").wait_for()
            page.wait_for_selector("#crew-page[data-queued='0']", state="attached")
            assert status_of(demo_db, stop["work_order_id"]) == ("completed", "closed")
            shot = screenshot(page, tmp_path, "crew-completed")
            keep_shot(shot)
            assert wait_until(
                lambda: any("Fixed" in str(m["Subject"]) for m in served.sink.messages()),
                timeout_s=30,
            )
        finally:
            context.close()
    mails = [m for m in served.sink.messages() if "Fixed" in str(m["Subject"])]
    # every resident who reported it (the demo's own reporter, and ours) gets the closure
    # notice once, with the after-photo
    recipients = [str(m["To"]) for m in mails]
    assert "rosa@example.org" in recipients
    assert len(recipients) == len(set(recipients))
    for mail in mails:
        images = [p for p in mail.walk() if p.get_content_type() == "image/jpeg"]
        assert len(images) == 1
    assert not recorder.problems(), recorder.problems()


def test_cant_do_sends_the_job_to_the_dispatchers_queue_with_the_reason(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    stop = sorted(route_of(served.url, demo_db)["stops"], key=lambda s: s["seq"])[1]
    context, page, recorder = open_crew_page(browser, served.url, crew_user)
    try:
        item = page.locator(f'#stops li.stop[data-work-order="{stop["work_order_id"]}"]')
        item.get_by_role("button", name="Can't do").click()
        dialog = page.locator("#cant-dialog")
        dialog_shot = tmp_path / "crew-cant-do-dialog.png"
        page.screenshot(path=str(dialog_shot))  # the viewport: the dialog is over the page
        keep_shot(dialog_shot)
        dialog.get_by_label("Reason").select_option("no_access")
        dialog.get_by_label("More details").fill("Gate locked, nobody home")
        dialog.get_by_role("button", name="Send").click()
        wait_gone(page, stop["work_order_id"])
        page.locator("#crew-log").get_by_text("Sent: Can't do at stop 2.").wait_for()
        with api(served.url, staff_token(demo_db, "dispatcher", "dispatcher-test")) as client:
            queue = client.get("/api/v1/dispatch/queue").json()
        row = next(q for q in queue if q["work_order_id"] == stop["work_order_id"])
        assert row["reason"] == "crew_cant_do"
        assert row["detail"] == "no access to the site: Gate locked, nobody home"
        assert row["queued_by"] == f"crew:{crew_user.name}"
        assert stop["work_order_id"] not in todo(page)
        assert stop["work_order_id"] not in [
            s["work_order_id"] for s in route_of(served.url, demo_db)["stops"]
        ]
        assert not recorder.problems(), recorder.problems()
    finally:
        context.close()


def test_a_job_the_dispatcher_moves_onto_the_crew_appears_without_a_reload(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    stops = sorted(route_of(served.url, demo_db)["stops"], key=lambda s: s["seq"])
    job = stops[-1]["work_order_id"]
    dispatcher = staff_token(demo_db, "dispatcher", "dispatcher-test")
    with api(served.url, dispatcher) as client:
        version = client.get(f"/api/v1/plans/{DAY.isoformat()}").json()["version"]
        r = client.post(
            f"/api/v1/plans/{DAY.isoformat()}/moves",
            json={"plan_version": version, "work_order_ids": [job], "to_crew": None},
        )
        assert r.status_code == 200, r.text
    context, page, recorder = open_crew_page(browser, served.url, crew_user)
    try:
        assert job not in todo(page)
        # pushed: the page listens to the live channel (its poll is then only a slow safety net)
        page.wait_for_selector("#crew-page[data-live=sse]", state="attached")
        page.evaluate("window.__sameDocument = true")
        with api(served.url, dispatcher) as client:
            version = client.get(f"/api/v1/plans/{DAY.isoformat()}").json()["version"]
            r = client.post(
                f"/api/v1/plans/{DAY.isoformat()}/moves",
                json={"plan_version": version, "work_order_ids": [job], "to_crew": "streets"},
            )
            assert r.status_code == 200, r.text
        page.locator(f'#stops li.stop[data-work-order="{job}"]').wait_for(timeout=10_000)
        assert page.evaluate("window.__sameDocument") is True  # no reload
        change = page.locator("#crew-change").inner_text()
        assert "1 stop(s) added" in change, change
        assert stops[-1]["category"] in json.dumps(
            route_of(served.url, demo_db)["stops"]
        )  # the plan itself has it
        keep_shot(screenshot(page, tmp_path, "crew-job-moved-in"))
        assert not recorder.problems(), recorder.problems()
    finally:
        context.close()


def test_two_completions_taken_offline_land_once_each_in_order(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    stops = sorted(route_of(served.url, demo_db)["stops"], key=lambda s: s["seq"])
    first, second = stops[0]["work_order_id"], stops[1]["work_order_id"]
    # Requests go straight to the network (no service worker), so the test can drop answers.
    context, page, _ = open_crew_page(browser, served.url, crew_user, service_workers="block")
    try:
        context.set_offline(True)
        complete_in_page(page, first, photo_file(tmp_path, "one.jpg", (200, 40, 40)), "first")
        complete_in_page(page, second, photo_file(tmp_path, "two.jpg", (40, 200, 40)), "second")
        page.wait_for_selector("#crew-page[data-queued='2']", state="attached")
        assert "2 action(s) waiting" in page.locator("#crew-net").inner_text()
        assert status_of(demo_db, first)[0] == status_of(demo_db, second)[0] == "scheduled"
        keep_shot(screenshot(page, tmp_path, "crew-offline-queue"))
        # Back online, the first sending of each reaches the server but its answer is lost:
        # the tablet sends the queue again, with the same keys.
        calls: dict[str, list[int]] = {}

        def lose_first_answer(route: Any) -> None:
            seen = calls.setdefault(route.request.url, [])
            response = route.fetch()
            seen.append(response.status)
            if len(seen) == 1:
                route.abort("connectionreset")
            else:
                route.fulfill(response=response)

        page.route("**/complete", lose_first_answer)
        context.set_offline(False)
        page.wait_for_selector("#crew-page[data-queued='0']", state="attached", timeout=30_000)
        wait_gone(page, second)
        # each completion was sent twice (the queue replayed) and both answers were 200
        assert sorted(len(v) for v in calls.values()) == [2, 2], calls
        assert all(v == [200, 200] for v in calls.values()), calls
        assert status_of(demo_db, first) == ("completed", "closed")
        assert status_of(demo_db, second) == ("completed", "closed")
        with demo_db.session() as s:
            rows = s.execute(
                text(
                    "SELECT entity_id, count(*) AS n, min(at) AS at FROM audit_events "
                    "WHERE entity = 'work_order' AND to_state = 'completed' "
                    "AND entity_id IN (:a, :b) GROUP BY entity_id ORDER BY min(at)"
                ),
                {"a": first, "b": second},
            ).all()
            photos = s.execute(
                text(
                    "SELECT count(*) FROM photos WHERE kind = 'after' AND id IN "
                    "(SELECT after_photo_id FROM work_orders WHERE id IN (:a, :b))"
                ),
                {"a": first, "b": second},
            ).scalar_one()
            notes: dict[int, str] = {
                int(i): str(n)
                for i, n in s.execute(
                    text("SELECT id, completion_note FROM work_orders WHERE id IN (:a, :b)"),
                    {"a": first, "b": second},
                )
            }
        assert [(r.entity_id, r.n) for r in rows] == [(first, 1), (second, 1)]  # once, in order
        assert photos == 2
        assert notes == {first: "first", second: "second"}
        keep_shot(screenshot(page, tmp_path, "crew-offline-sent"))
    finally:
        context.close()


def test_another_crews_route_and_jobs_are_refused(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    theirs = route_of(served.url, demo_db, "forestry")["stops"][0]["work_order_id"]
    context, page, recorder = open_crew_page(browser, served.url, crew_user)
    try:
        answers = page.evaluate(
            """async ([day, job]) => {
                const token = (await (await fetch('/api/v1/session')).json()).csrf_token;
                const form = new FormData();
                const bytes = new Blob([new Uint8Array([255, 216, 255])], {type: 'image/jpeg'});
                form.append('photo', bytes, 'a.jpg');
                form.append('resolution_code', 'repaired');
                form.append('expected_version', '1');
                const done = await fetch(`/api/v1/work-orders/${job}/complete`,
                    {method: 'POST', body: form, headers: {'X-CSRF-Token': token}});
                return {
                  page_json: (await fetch(`/api/v1/crew/${day}?crew=forestry`)).status,
                  plan: (await fetch(`/api/v1/plans/${day}/crews/forestry`)).status,
                  complete: done.status,
                  complete_detail: (await done.json()).detail,
                };
            }""",
            [DAY.isoformat(), theirs],
        )
        assert answers["page_json"] == 403
        assert answers["plan"] == 403
        assert answers["complete"] == 403
        assert "not your crew's work" in answers["complete_detail"]
        assert status_of(demo_db, theirs)[0] == "scheduled"
        # The page itself only ever shows one's own crew.
        page.goto(f"{served.url}/crew?date={DAY.isoformat()}&crew=forestry")
        wait_ready(page, recorder)
        assert theirs not in todo(page)
    finally:
        context.close()


def test_a_residents_markup_is_shown_as_text_in_the_list_and_the_popup(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    stop = sorted(route_of(served.url, demo_db)["stops"], key=lambda s: s["seq"])[0]
    _subscribe(demo_db, stop["incident_id"], "eve@example.org")
    with demo_db.session() as s:
        s.execute(
            text("UPDATE reports SET description = :d WHERE incident_id = :i"),
            {"d": EVIL, "i": stop["incident_id"]},
        )
    context, page, recorder = open_crew_page(browser, served.url, crew_user)
    try:
        item = page.locator(f'#stops li.stop[data-work-order="{stop["work_order_id"]}"]')
        assert item.locator(".description").first.inner_text() == EVIL
        item.locator(".stop-pick").click()
        page.locator(".leaflet-popup-content .said").wait_for()
        assert page.locator(".leaflet-popup-content .said").first.inner_text() == EVIL
        assert page.locator("img[src=x]").count() == 0
        page.wait_for_timeout(300)
        assert recorder.dialogs == []
        keep_shot(screenshot(page, tmp_path, "crew-markup-as-text"))
    finally:
        context.close()


def test_a_completion_queued_offline_for_a_job_moved_away_meanwhile_is_said_and_kept(
    browser: Any,
    served: Served,
    demo_db: Database,
    crew_user: DemoSignin,
    planned: None,
    tmp_path: Path,
) -> None:
    job = sorted(route_of(served.url, demo_db)["stops"], key=lambda s: s["seq"])[0]
    context, page, _ = open_crew_page(browser, served.url, crew_user)
    dispatcher = staff_token(demo_db, "dispatcher", "dispatcher-test")
    try:
        context.set_offline(True)
        complete_in_page(
            page,
            job["work_order_id"],
            photo_file(tmp_path, "late.jpg", (90, 90, 20)),
            "Cold patch done",
        )
        page.wait_for_selector("#crew-page[data-queued='1']", state="attached")
        # Meanwhile the dispatcher takes the job off this crew.
        with api(served.url, dispatcher) as client:
            version = client.get(f"/api/v1/plans/{DAY.isoformat()}").json()["version"]
            r = client.post(
                f"/api/v1/plans/{DAY.isoformat()}/moves",
                json={
                    "plan_version": version,
                    "work_order_ids": [job["work_order_id"]],
                    "to_crew": None,
                },
            )
            assert r.status_code == 200, r.text
        context.set_offline(False)
        page.wait_for_selector("#crew-page[data-queued='0']", state="attached", timeout=30_000)
        # said plainly, where it stays: what was refused, why, and that nothing was lost
        banner = page.locator("#crew-refused")
        banner.get_by_text("were kept").wait_for()
        assert "Not done — Complete at stop 1" in banner.inner_text()
        assert "is not your crew's work" in banner.inner_text()
        # ... and said once: the passing log does not repeat it
        said = page.locator("#crew-log").inner_text()
        assert "Not done" not in said, said
        assert "were kept" not in said, said
        keep_shot(screenshot(page, tmp_path, "crew-refused-and-kept"))
        assert status_of(demo_db, job["work_order_id"])[0] == "triaged"
        with api(served.url, dispatcher) as client:
            kept = client.get("/api/v1/crew/kept").json()
            mine = [k for k in kept if k["work_order_id"] == job["work_order_id"]]
            assert len(mine) == 1, kept
            assert mine[0]["action"] == "complete"
            assert mine[0]["note"].startswith("Cold patch done")
            assert "not your crew's work" in mine[0]["refusal"]
            assert mine[0]["crew"] == "streets"
            photo = client.get(mine[0]["photo_url"])
            assert photo.status_code == 200
            assert photo.headers["content-type"] == "image/jpeg"
    finally:
        context.close()
