"""The resident's report page (/report, maps.report_page) at its edges, in headless Chromium:
what it says when something is missing or refused, and database text shown as text. The
photo-and-pin journeys are in test_report_map_page.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from geo311.kernel.database import Database
from tests.conftest import LiveServer


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/report")
        page.wait_for_selector("#report-map[data-ready]", state="attached", timeout=20_000)
        yield page
    finally:
        context.close()


def test_a_report_with_no_pin_explains_what_is_missing_and_sends_nothing(page: Any) -> None:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/reports" in r.url else None)
    page.select_option("#category", "graffiti")
    page.click("#send")
    result = page.locator("#result.err")
    result.wait_for(timeout=10_000)
    assert "Put a pin on the map" in result.inner_text()
    assert sent == []


def test_a_pin_outside_the_city_is_named_and_the_refusal_is_shown(
    page: Any, demo_db: Database
) -> None:
    # Drop the pin well outside the city's extent (the map is fitted to it), then send.
    page.evaluate(
        """() => {
            const root = document.getElementById("report-map");
            const map = window[root.dataset.map];
            const c = map.getBounds();
            map.fire("click", { latlng: L.latLng(c.getSouth() - 0.5, c.getWest() - 0.5) });
        }"""
    )
    page.wait_for_selector('#report-map[data-ward="outside"]', state="attached", timeout=10_000)
    assert page.locator("#ward-status").inner_text() == "This place is outside the city."
    with demo_db.session() as s:
        before = s.execute(text("SELECT count(*) FROM reports")).scalar_one()
    page.click("#send")
    result = page.locator("#result.err")
    result.wait_for(timeout=10_000)
    assert "outside the area" in result.inner_text()
    with demo_db.session() as s:
        assert s.execute(text("SELECT count(*) FROM reports")).scalar_one() == before


def test_category_names_are_shown_as_text_not_html(
    browser: Any, live_server: LiveServer, demo_db: Database
) -> None:
    evil = "<img src=x onerror=\"document.title='owned'\">Broken bench"
    with demo_db.session() as s:
        s.execute(
            text(
                "INSERT INTO service_categories "
                "(jurisdiction_id, code, name, group_code, sla_hours) "
                "SELECT id, 'bench', :name, 'parks', 48 FROM jurisdictions WHERE slug = 'demo'"
            ),
            {"name": evil},
        )
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/report")
        option = page.locator("#category optgroup[label=Parks] option[value=bench]")
        assert option.inner_text() == evil
        assert page.locator("#category img").count() == 0
        assert page.title() != "owned"
    finally:
        context.close()
