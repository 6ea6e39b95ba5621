"""The planner's page (/planner) in headless Chromium at desktop size, as the demo planner uses
it: the measure switch shows the API's own figures in the ward table, choosing a ward draws its
weekly trend, the CSV link downloads the same numbers, a ward's name is shown as text, the
heat layer draws Leaflet.heat's canvas; nothing
fetched from another host, no CSP violation, an axe-core audit with nothing serious. A crew
user gets the 403 page; nobody signed in is sent to sign in."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from fixtures.demo_users import DemoSignin, ensure_demo_signins
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings, SigninSettings
from tests.maps.live import Recorder, record, screenshot, serve
from tests.pages.test_map_page import DESKTOP, EVIL, audit

MEDIAN = "median_close_h"


@pytest.fixture
def app_url(demo_db: Database, tmp_path: Path) -> Iterator[str]:
    with serve(demo_db, lambda port: Settings(data_dir=tmp_path, port=port)) as url:
        yield url


@pytest.fixture
def demo_signins(demo_db: Database) -> dict[str, DemoSignin]:
    cheap = SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
    found = ensure_demo_signins(demo_db, slug="demo", passwords=Passwords(cheap))
    return {d.role: d for d in found}


def sign_in_to_planner(browser: Any, url: str, demo: DemoSignin) -> tuple[Any, Any, Recorder]:
    """Open /planner unsigned, sign in on the form it sends us to, and land back on it; then
    open the page afresh with a recorder (the sign-in page is not this test's: it has no icon
    link, so Chromium's own /favicon.ico probe logs a 404 there)."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    signin = context.new_page()
    signin.goto(f"{url}/planner")
    assert urlsplit(signin.url).path == "/login"
    assert parse_qs(urlsplit(signin.url).query)["next"] == ["/planner"]
    signin.get_by_label("Name").fill(demo.name)
    signin.get_by_label("Password").fill(demo.password)
    signin.get_by_role("button", name="Sign in").click()
    signin.wait_for_url(f"{url}/planner")
    # the staff page is in the header's navigation, for the roles it lets in
    assert (
        signin.get_by_role("navigation", name="Pages")
        .get_by_role("link", name="Ward heatmaps")
        .get_attribute("aria-current")
        == "page"
    )
    signin.close()
    page = context.new_page()
    recorder = record(page)
    page.goto(f"{url}/planner")
    return context, page, recorder


def wait_ready(page: Any, recorder: Recorder) -> None:
    try:
        page.wait_for_selector("#planner-map[data-state=ready]", state="attached", timeout=30_000)
    except Exception as exc:
        raise AssertionError(f"the planner page did not get ready: {recorder.console}") from exc


def test_the_planner_reads_the_apis_figures_a_wards_trend_and_the_same_csv(
    browser: Any,
    app_url: str,
    demo_db: Database,
    demo_signins: dict[str, DemoSignin],
    tmp_path: Path,
) -> None:
    with demo_db.session() as s:
        renamed = s.execute(
            text(
                "UPDATE wards SET name = :n WHERE id = (SELECT min(id) FROM wards) RETURNING code"
            ),
            {"n": EVIL},
        ).scalar_one()
    context, page, recorder = sign_in_to_planner(browser, app_url, demo_signins["planner"])
    try:
        wait_ready(page, recorder)
        page.get_by_label("Measure", exact=True).select_option(MEDIAN)
        # The API's own table, for the period the page asks for (its date fields).
        period = {n: page.locator(f"#{n}").input_value() for n in ("from", "to")}
        api = page.evaluate(
            "async (q) => (await fetch('/api/v1/analytics/wards?' + new URLSearchParams(q)))"
            ".json()",
            period,
        )
        compared = [w for w in api["wards"] if w["ranked"] and w[MEDIAN] is not None]
        assert compared, "the demo city has wards with enough closed cases"
        ward = max(compared, key=lambda w: w[MEDIAN])
        row = page.locator(f'#ward-table tbody tr[data-ward="{ward["code"]}"]')
        assert page.locator("#value-heading").inner_text() == "Median time to close"
        shown = row.locator("td.value").inner_text()
        assert shown == f"{ward[MEDIAN]:,.1f} h", (shown, ward[MEDIAN])
        assert float(row.locator("td.value").get_attribute("data-value") or "") == ward[MEDIAN]
        assert row.locator("td.rank").inner_text() == str(ward["rank"][MEDIAN])
        # sorted by the measure, highest first: the slowest ward heads the table
        first = page.locator("#ward-table tbody tr").first
        assert first.get_attribute("data-ward") == ward["code"]
        assert page.locator("#city-value").inner_text() == f"{api['city'][MEDIAN]:,.1f} h"
        # too few cases: said so, never ranked
        for few in (w for w in api["wards"] if w["too_few"]):
            few_row = page.locator(f'#ward-table tbody tr[data-ward="{few["code"]}"]')
            assert few_row.locator("td.value").inner_text() == "Too few cases"
            assert few_row.locator("td.rank").inner_text() == "not ranked"
        # the legend: quantile classes, then the gap from the city on a diverging scale
        assert page.locator("#legend-classes li").count() >= 3
        assert "h" in page.locator("#legend-classes li").first.inner_text()
        assert page.locator("#ward-table").get_by_text(EVIL, exact=True).count() == 1
        assert page.locator(".leaflet-overlay-pane path").count() == len(api["wards"])
        # choose the ward: its weekly trend
        row.locator("button.ward-choose").click()
        page.wait_for_selector("#trend[data-state=ready]", state="attached", timeout=20_000)
        points = int(page.locator("#trend").get_attribute("data-points") or 0)
        assert points > 0
        assert page.locator("#trend-chart svg circle.trend-dot").count() == points
        assert ward["name"] in page.locator("#trend-title").inner_text()
        shot = screenshot(page, tmp_path, "planner-median-trend")
        # the CSV link carries the page's period and gives the same figure
        href = page.locator("#export-csv").get_attribute("href") or ""
        assert parse_qs(urlsplit(href).query) == {k: [v] for k, v in period.items()}
        with page.expect_download() as download:
            page.locator("#export-csv").click()
        saved = Path(download.value.path())
        rows = {r["code"]: r for r in csv.DictReader(io.StringIO(saved.read_text("utf-8")))}
        assert float(rows[ward["code"]][MEDIAN]) == ward[MEDIAN]
        assert rows[renamed]["name"] == EVIL
        # the diverging view of the gap from the city
        page.get_by_label("Gap from the city", exact=True).check()
        assert "lower than the city" in page.locator("#legend-classes").inner_text()
        assert row.locator("td.gap").inner_text().startswith(("+", "-", "−"))
        gap_shot = screenshot(page, tmp_path, "planner-median-gap")
        # one category: the table is asked again with it, and so are the export links
        code = page.locator("#category option").nth(1).get_attribute("value")
        with page.expect_response(lambda r: "wards.geojson" in r.url and "category=" in r.url):
            page.get_by_label("Category", exact=True).select_option(code)
        wait_ready(page, recorder)
        assert f"category={code}" in (page.locator("#export-csv").get_attribute("href") or "")
        fewer = page.evaluate(
            "async (q) => (await fetch('/api/v1/analytics/wards?' + new URLSearchParams(q)))"
            ".json()",
            {**period, "category": code},
        )
        assert (
            page.locator("#planner-status")
            .inner_text()
            .startswith(
                f"{len(fewer['wards'])} wards, {sum(w['reports'] for w in fewer['wards'])} reports"
            )
        )
        # the hotspot areas, switched on
        page.get_by_label("Hotspot areas").check()
        page.wait_for_selector("#planner-map[data-hotspots]", state="attached", timeout=30_000)
        hot_shot = screenshot(page, tmp_path, "planner-category-hotspots")
        # the heat of reports, switched on: Leaflet.heat's canvas over the map
        assert page.locator("canvas.leaflet-heatmap-layer").count() == 0
        page.get_by_label("Heat of reports").check()
        page.wait_for_selector("#planner-map[data-heat-cells]", state="attached", timeout=30_000)
        assert int(page.locator("#planner-map").get_attribute("data-heat-cells") or 0) > 0
        assert page.locator("canvas.leaflet-heatmap-layer").count() == 1
        # the legend says what the heat's colours mean, with the reports the API counted
        heat_data = page.evaluate(
            "async (q) => (await fetch('/api/v1/analytics/heat?' + new URLSearchParams(q))).json()",
            {**period, "category": code},
        )
        heat_legend = page.locator("#legend-classes li.legend-heat")
        assert heat_legend.inner_text().startswith("Heat of reports: from few (blue)")
        assert f"{heat_data['reports']:,} reports counted" in heat_legend.inner_text()
        heat_shot = screenshot(page, tmp_path, "planner-category-heat")
        page.wait_for_timeout(300)  # an onerror would have fired by now
        assert recorder.dialogs == []
        assert recorder.origins() == {app_url}, recorder.origins()
        assert not recorder.problems(), recorder.problems()
        assert not audit(page, app_url)
        print(f"screenshots: {shot} {gap_shot} {hot_shot} {heat_shot}")
    finally:
        context.close()


def test_a_crew_user_gets_the_403_page(
    browser: Any, app_url: str, demo_signins: dict[str, DemoSignin], tmp_path: Path
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    recorder = record(page)
    try:
        page.goto(f"{app_url}/login")
        page.get_by_label("Name").fill(demo_signins["crew"].name)
        page.get_by_label("Password").fill(demo_signins["crew"].password)
        page.get_by_role("button", name="Sign in").click()
        page.locator("#who").wait_for(timeout=10_000)
        response = page.goto(f"{app_url}/planner")
        assert response is not None
        assert response.status == 403
        assert "for planners, dispatchers and admins" in page.locator("main").inner_text()
        assert page.get_by_role("link", name="Ward heatmaps").count() == 0
        assert page.locator("#planner-map").count() == 0
        screenshot(page, tmp_path, "planner-403")
        page.goto(f"{app_url}/planner?lang=es")
        assert "son para planificadores" in page.locator("main").inner_text()
        page.goto(f"{app_url}/planner?lang=en")
        assert recorder.origins() == {app_url}, recorder.origins()
        assert not audit(page, app_url)
    finally:
        context.close()
