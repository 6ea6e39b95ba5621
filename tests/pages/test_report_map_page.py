"""The map-first report page (/report) in headless Chromium on a phone, as a resident uses it:
a photo whose GPS places the pin before upload, a pin dropped by a tap, the ward under the
pin, the tracking number and the link to the tracking page; nothing fetched from another
host, no CSP violation, an axe-core audit with nothing serious."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from sqlalchemy import text

from fixtures.demo_city import PHOTO_WARDS
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings
from tests.maps.live import Recorder, record, screenshot, serve
from tests.pages.test_map_page import PHONE, audit

PHOTOS = Path(__file__).resolve().parents[2] / "fixtures" / "photos"
GPS_PHOTO = "pothole_ward4.jpg"


@pytest.fixture
def app_url(demo_db: Database, tmp_path: Path) -> Iterator[str]:
    with serve(demo_db, lambda port: Settings(data_dir=tmp_path, port=port)) as url:
        yield url


@pytest.fixture
def phone(browser: Any, app_url: str) -> Iterator[tuple[Any, Recorder]]:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    recorder = record(page)
    page.goto(f"{app_url}/report")
    try:
        page.wait_for_selector("#report-map[data-ready]", state="attached", timeout=20_000)
        yield page, recorder
    finally:
        context.close()


def pin(page: Any) -> tuple[float, float] | None:
    value = page.locator("#report-map").get_attribute("data-pin")
    if not value:
        return None
    lat, lon = value.split(",")
    return float(lat), float(lon)


def stored(db: Database, tracking: str) -> tuple[str, str | None, float, float, str]:
    with db.session() as s:
        row = s.execute(
            text(
                "SELECT r.description, w.code, ST_Y(r.geom), ST_X(r.geom), "
                "r.location_source FROM reports r LEFT JOIN wards w "
                "ON w.jurisdiction_id = r.jurisdiction_id AND w.id = r.ward_id "
                "WHERE r.tracking_id = :t"
            ),
            {"t": tracking},
        ).one()
    return row[0], row[1], row[2], row[3], row[4]


def test_a_gps_photo_moves_the_pin_shows_the_ward_and_the_report_reaches_its_tracking_page(
    phone: tuple[Any, Recorder], app_url: str, demo_db: Database, tmp_path: Path
) -> None:
    page, recorder = phone
    assert pin(page) is None
    assert "Tap the map" in page.locator("#pin-status").inner_text()
    page.select_option("#category", "pothole")
    page.set_input_files("#photo", str(PHOTOS / GPS_PHOTO))
    # The pin moves to the photo's place in the browser, before anything is uploaded.
    page.wait_for_selector('#report-map[data-photo="gps"]', state="attached", timeout=10_000)
    assert pin(page) is not None
    assert "where the photo was taken" in page.locator("#pin-status").inner_text()
    page.wait_for_selector("#report-map[data-ward]", state="attached", timeout=10_000)
    assert page.locator("#ward-status").inner_text() == f"Ward: Ward {PHOTO_WARDS[GPS_PHOTO]}"
    assert page.locator("#photo-preview").is_visible()
    assert not [r for r in recorder.requests if "/api/v1/reports" in r]  # nothing sent yet
    before = screenshot(page, tmp_path, "report-phone-photo-pin")
    assert not audit(page, app_url)

    page.fill("#description", "Deep hole by the bus stop")
    page.click("#send")
    number = page.locator("#tracking-number")
    number.wait_for(timeout=15_000)
    tracking = page.locator("#report-map").get_attribute("data-tracking")
    assert tracking
    assert tracking in number.inner_text()
    assert page.locator("#result-ward").inner_text() == f"Ward: Ward {PHOTO_WARDS[GPS_PHOTO]}"
    description, ward, lat, lon, _ = stored(demo_db, tracking)
    assert description == "Deep hole by the bus stop"
    assert ward == PHOTO_WARDS[GPS_PHOTO]
    pinned = pin(page)
    assert pinned is not None
    assert abs(lat - pinned[0]) < 1e-5
    assert abs(lon - pinned[1]) < 1e-5
    after = screenshot(page, tmp_path, "report-phone-photo-sent")
    assert not audit(page, app_url)

    page.click("#track-link")
    page.wait_for_url(f"**/track/{tracking}")
    assert tracking in page.locator("#track-title").inner_text()
    screenshot(page, tmp_path, "report-phone-track")
    assert recorder.origins() == {app_url}, recorder.origins()
    assert not recorder.problems(), recorder.problems()
    print(f"screenshots: {before} {after}")


def test_a_pin_dropped_by_a_tap_files_a_report_without_a_photo(
    phone: tuple[Any, Recorder], app_url: str, demo_db: Database, tmp_path: Path
) -> None:
    page, recorder = phone
    page.select_option("#category", "graffiti")
    page.click("#send")  # no pin yet: the page says what is missing and sends nothing
    assert "Put a pin" in page.locator("#result.err").inner_text()
    the_map = page.locator(".folium-map")
    box = the_map.bounding_box()
    the_map.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    page.wait_for_selector("#report-map[data-ward]", state="attached", timeout=10_000)
    assert "Pin placed" in page.locator("#pin-status").inner_text()
    ward_code = page.locator("#report-map").get_attribute("data-ward")
    page.click("#send")
    page.locator("#tracking-number").wait_for(timeout=15_000)
    tracking = page.locator("#report-map").get_attribute("data-tracking")
    assert tracking
    _, ward, lat, lon, source = stored(demo_db, tracking)
    assert source == "pin"
    assert ward == ward_code
    assert (lat, lon) == pytest.approx(pin(page), abs=1e-5)
    shot = screenshot(page, tmp_path, "report-phone-tap-sent")
    assert recorder.origins() == {app_url}, recorder.origins()
    assert not recorder.problems(), recorder.problems()
    assert not audit(page, app_url)
    print(f"screenshot: {shot}")


def test_a_photo_without_gps_says_so_and_the_pin_stays_unset(
    phone: tuple[Any, Recorder], tmp_path: Path
) -> None:
    page, recorder = phone
    plain = tmp_path / "no-gps.jpg"
    Image.new("RGB", (64, 48), "#888").save(plain, "JPEG")  # a photo with no EXIF at all
    page.set_input_files("#photo", str(plain))
    page.wait_for_selector("#report-map[data-photo]", state="attached", timeout=10_000)
    assert page.locator("#report-map").get_attribute("data-photo") == "no-gps"
    assert "use your location" in page.locator("#photo-status").inner_text()
    assert pin(page) is None
    assert not recorder.problems(), recorder.problems()


def test_the_ward_endpoint_names_the_ward_or_none_outside_the_city(
    app_url: str, demo_db: Database
) -> None:
    with demo_db.session() as s:
        lon, lat = s.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM wards "
                "WHERE code = '4' LIMIT 1) AS x"
            )
        ).one()
    inside = requests.get(f"{app_url}/api/v1/map/ward", params={"lat": lat, "lon": lon}, timeout=10)
    assert inside.json() == {"ward": {"code": "4", "name": "Ward 4"}}
    far = requests.get(f"{app_url}/api/v1/map/ward?lat=60&lon=60", timeout=10)
    assert far.json() == {"ward": None}
    bad = requests.get(f"{app_url}/api/v1/map/ward?lat=100&lon=0", timeout=10)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_when_the_photo_and_the_device_disagree_the_page_asks_which_place_is_right(
    browser: Any, app_url: str, demo_db: Database, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=PHONE, permissions=["geolocation"])
    try:
        page = context.new_page()
        recorder = record(page)
        page.goto(f"{app_url}/report")
        page.wait_for_selector("#report-map[data-ready]", state="attached", timeout=20_000)
        page.set_input_files("#photo", str(PHOTOS / GPS_PHOTO))
        page.wait_for_selector('#report-map[data-photo="gps"]', state="attached", timeout=10_000)
        photo_place = pin(page)
        assert photo_place is not None
        assert page.locator("#places-choices").is_hidden()  # one place known: nothing to ask

        # The phone says it is about 400 m north of where the photo was taken.
        device = (photo_place[0] + 0.0036, photo_place[1])
        context.set_geolocation({"latitude": device[0], "longitude": device[1]})
        page.locator("#locate").click()
        page.wait_for_selector('#report-map[data-pin-from="device"]', state="attached")
        assert pin(page) == pytest.approx(device, abs=1e-5)
        question = page.get_by_role("status").filter(has_text="Which place is right?")
        question.wait_for(timeout=5_000)
        with demo_db.session() as s:
            apart = s.execute(
                text(
                    "SELECT ST_Distance(ST_MakePoint(:a, :b)::geography, "
                    "ST_MakePoint(:c, :d)::geography)"
                ),
                {"a": photo_place[1], "b": photo_place[0], "c": device[1], "d": device[0]},
            ).scalar_one()
        said = question.inner_text()
        shown = re.search(r"taken (\d+) m from where your device", said)
        assert shown, said
        assert abs(int(shown.group(1)) - apart) <= 10, (said, apart)
        choices = page.locator("#places-choices")
        assert choices.get_by_role("button", name="Use my location").is_hidden()  # pin is there
        assert choices.get_by_role("button", name="Keep the pin where I put it").is_visible()
        shot = screenshot(page, tmp_path, "report-phone-which-place")
        seen = tmp_path / "report-phone-which-place-screen.png"
        page.screenshot(path=str(seen))  # the first screen of the phone, as the resident sees it
        assert not audit(page, app_url)

        choices.get_by_role("button", name="Use the photo's place").click()
        page.wait_for_selector('#report-map[data-places="answered"]', state="attached")
        assert pin(page) == pytest.approx(photo_place, abs=1e-6)
        assert (float(page.input_value("#lat")), float(page.input_value("#lon"))) == (
            pytest.approx(photo_place, abs=1e-6)
        )
        assert "where the photo was taken" in page.locator("#pin-status").inner_text()
        assert choices.is_hidden()
        assert page.locator("#places-said").inner_text() == ""
        assert recorder.origins() == {app_url}, recorder.origins()
        assert not recorder.problems(), recorder.problems()
        print(f"screenshots: {shot} {seen}")
    finally:
        context.close()


def test_use_my_location_puts_the_pin_at_the_device_and_a_close_photo_asks_nothing(
    browser: Any, app_url: str, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=PHONE, permissions=["geolocation"])
    try:
        page = context.new_page()
        recorder = record(page)
        page.goto(f"{app_url}/report")
        page.wait_for_selector("#report-map[data-ready]", state="attached", timeout=20_000)
        page.set_input_files("#photo", str(PHOTOS / GPS_PHOTO))
        page.wait_for_selector('#report-map[data-photo="gps"]', state="attached", timeout=10_000)
        photo_place = pin(page)
        assert photo_place is not None
        # About 10 m away: the same place within a street's width, so no question.
        device = (photo_place[0] + 0.00009, photo_place[1])
        context.set_geolocation({"latitude": device[0], "longitude": device[1]})
        page.locator("#locate").click()
        page.wait_for_selector('#report-map[data-pin-from="device"]', state="attached")
        assert pin(page) == pytest.approx(device, abs=1e-5)
        assert "your device's location" in page.locator("#pin-status").inner_text()
        page.wait_for_selector("#report-map[data-ward]", state="attached", timeout=10_000)
        assert page.locator("#ward-status").inner_text() == f"Ward: Ward {PHOTO_WARDS[GPS_PHOTO]}"
        assert page.locator("#report-map").get_attribute("data-places") == "agree"
        assert page.locator("#places-choices").is_hidden()
        assert not recorder.problems(), recorder.problems()
    finally:
        context.close()
