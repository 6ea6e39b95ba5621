"""The resident's report page, used as a person would, in headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fixtures.demo_city import PHOTO_WARDS
from geo311.kernel.database import Database
from tests.conftest import LiveServer

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_photo_report_from_the_page_gets_a_tracking_number_and_its_ward(
    page: Any, live_server: LiveServer, demo_db: Database
) -> None:
    name = next(n for n in sorted(PHOTO_WARDS) if n.startswith("pothole"))
    page.goto(f"{live_server.url}/report")
    page.select_option("#category", "pothole")
    page.set_input_files("#photo", str(PHOTOS / name))
    page.fill("#description", "Deep hole by the bus stop")
    page.click("#send")
    result = page.locator("#result.ok")
    result.wait_for(timeout=10_000)
    shown = result.inner_text()
    assert f"Ward {PHOTO_WARDS[name]}" in shown
    assert "placed from the photo's GPS" in shown
    tracking = shown.split("tracking number is ")[1].split(".")[0]
    with demo_db.session() as s:
        stored = s.execute(
            text("SELECT description FROM reports WHERE tracking_id = :t"), {"t": tracking}
        ).scalar_one()
    assert stored == "Deep hole by the bus stop"
    page.screenshot(path="/tmp/report-ok.png")


def test_a_report_with_no_location_explains_what_is_missing(
    page: Any, live_server: LiveServer
) -> None:
    page.goto(f"{live_server.url}/report")
    page.select_option("#category", "graffiti")
    page.click("#send")
    result = page.locator("#result.err")
    result.wait_for(timeout=10_000)
    assert "No location" in result.inner_text()


def test_category_names_are_shown_as_text_not_html(
    page: Any, live_server: LiveServer, demo_db: Database
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
    page.goto(f"{live_server.url}/report")
    option = page.locator("#category option[value=bench]")
    assert option.inner_text() == evil
    assert page.locator("#category img").count() == 0
    assert page.title() != "owned"
