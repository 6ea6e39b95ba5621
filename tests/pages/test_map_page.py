"""The public map (/map) in headless Chromium, as a resident uses it: markers and geo311's own
basemap with no tile server, at phone, tablet and desktop sizes; nothing fetched from another
host; user text shown as text; no CSP violation; an axe-core audit with nothing serious."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.settings import MapsSettings, Settings
from maps.assets import vendor_url
from tests.maps.live import Recorder, record, screenshot, serve
from tests.support import free_port

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 800, "height": 1280}
DESKTOP = {"width": 1440, "height": 900}
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def app_url(demo_db: Database, tmp_path: Path) -> Iterator[str]:
    with serve(demo_db, lambda port: Settings(data_dir=tmp_path, port=port)) as url:
        yield url


def open_map(browser: Any, url: str, viewport: dict[str, int]) -> tuple[Any, Any, Recorder]:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    recorder = record(page)
    page.goto(f"{url}/map")
    try:
        page.wait_for_selector("#public-map[data-ready]", state="attached", timeout=20_000)
    except Exception as exc:
        raise AssertionError(f"the map did not get ready: {recorder.console}") from exc
    return context, page, recorder


def show_marker(page: Any, tracking: str | None = None) -> str:
    """Zoom in until the marker of ``tracking`` (else the first one) stands alone, as a person
    would, and return its tracking id.

    markercluster's zoomToShowLayer waits for the map's zoom animation to end; on a busy
    machine headless Chromium can drop that event and the call never returns, so after a few
    seconds the map goes there without animation and the marker itself is waited for.
    """
    found: str = page.evaluate(
        """(tracking) => new Promise((done, fail) => {
            const root = document.getElementById("public-map");
            const cluster = window[root.dataset.cluster];
            const m = tracking
                ? cluster.getLayers().find((l) => l.incident.tracking_id === tracking)
                : cluster.getLayers()[0];
            const map = cluster._map;
            const started = Date.now();
            let finished = false;
            let forced = false;
            const finish = () => {
                if (!finished) { finished = true; done(m.incident.tracking_id); }
            };
            cluster.zoomToShowLayer(m, finish);
            const poll = () => {
                if (finished) return;
                if (m._icon && cluster.getVisibleParent(m) === m) return finish();
                if (!forced && Date.now() - started > 3000) {
                    forced = true;
                    map.setView(m.getLatLng(), map.getMaxZoom(), {animate: false});
                    const parent = cluster.getVisibleParent(m);
                    if (parent && parent !== m && parent.spiderfy) parent.spiderfy();
                }
                if (Date.now() - started > 20000) return fail(new Error("marker never shown"));
                setTimeout(poll, 200);
            };
            poll();
        })""",
        tracking,
    )
    return found


def basemap_paths(page: Any) -> int:
    return int(page.locator(".leaflet-basemap-pane path").count())


def markers_and_clusters(page: Any) -> int:
    return int(page.locator(".leaflet-marker-pane .leaflet-marker-icon").count())


def audit(page: Any, url: str) -> list[str]:
    """Return the serious and critical axe-core violations on the page, as readable lines."""
    page.add_script_tag(url=url + vendor_url("axe-core", "axe.min.js"))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']}: {v['help']} ({len(v['nodes'])} × {v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(
    ("name", "viewport"), [("phone", PHONE), ("tablet", TABLET), ("desktop", DESKTOP)]
)
def test_the_map_shows_markers_and_the_basemap_with_nothing_from_another_host(
    browser: Any, app_url: str, tmp_path: Path, name: str, viewport: dict[str, int]
) -> None:
    context, page, recorder = open_map(browser, app_url, viewport)
    try:
        assert page.locator("#public-map").get_attribute("data-ready") == "yes"
        assert markers_and_clusters(page) > 0
        assert basemap_paths(page) > 20  # wards and streets
        assert page.locator(".ward-label").count() > 0
        assert int(page.locator("#public-map").get_attribute("data-shown") or 0) > 0
        assert "reports shown" in page.locator("#map-status").inner_text()
        # the page fits the screen: no sideways scrolling, a map of a usable size
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        box = page.locator(".folium-map").bounding_box()
        assert box["height"] >= 300
        assert box["width"] >= min(viewport["width"] - 2, 600)
        shot = screenshot(page, tmp_path, f"map-{name}")
        assert recorder.origins() == {app_url}, recorder.origins()
        assert not recorder.problems(), recorder.problems()
        assert not audit(page, app_url)
        print(f"screenshot: {shot}")
    finally:
        context.close()


def test_the_category_filter_hides_and_shows_markers(
    browser: Any, app_url: str, tmp_path: Path
) -> None:
    context, page, _ = open_map(browser, app_url, DESKTOP)
    try:
        shown = int(page.locator("#public-map").get_attribute("data-shown") or 0)
        boxes = page.locator("#map-filter input[name=category]")
        for i in range(1, boxes.count()):  # keep only the first category
            boxes.nth(i).uncheck()
        fewer = int(page.locator("#public-map").get_attribute("data-shown") or 0)
        assert 0 < fewer < shown
        page.locator("#map-filter input[name=state][value=open]").uncheck()
        page.locator("#map-filter input[name=state][value=fixed]").uncheck()
        assert page.locator("#public-map").get_attribute("data-shown") == "0"
        assert markers_and_clusters(page) == 0
        screenshot(page, tmp_path, "map-filtered-empty")
    finally:
        context.close()


def test_a_description_with_html_shows_as_text_in_its_popup_and_runs_nothing(
    browser: Any, app_url: str, demo_db: Database, tmp_path: Path
) -> None:
    with demo_db.session() as s:
        tracking = s.execute(
            text(
                "SELECT r.tracking_id FROM incidents i JOIN reports r ON r.incident_id = i.id "
                "WHERE i.status = 'new' ORDER BY r.reported_at, r.id LIMIT 1"
            )
        ).scalar_one()
        s.execute(
            text("UPDATE reports SET description = :d WHERE tracking_id = :t"),
            {"d": EVIL, "t": tracking},
        )
    context, page, recorder = open_map(browser, app_url, PHONE)
    try:
        # Zoom in until its marker stands alone (as a person would), then tap it.
        show_marker(page, tracking)
        page.locator(f'[data-tracking="{tracking}"]').click()
        popup = page.locator(".leaflet-popup-content .popup-description")
        popup.wait_for(timeout=10_000)
        assert popup.inner_text() == EVIL
        assert page.locator(".leaflet-popup-content img").count() == 0
        assert tracking in page.locator(".leaflet-popup-content").inner_text()
        page.wait_for_timeout(500)  # an onerror would have fired by now
        shot = screenshot(page, tmp_path, "map-popup-escaped")
        assert recorder.dialogs == []
        assert not recorder.problems(), recorder.problems()
        assert not audit(page, app_url)
        print(f"screenshot: {shot}")
    finally:
        context.close()


def test_with_unreachable_tiles_the_map_still_draws_and_asks_no_other_host(
    browser: Any, demo_db: Database, tmp_path: Path
) -> None:
    tile_host = f"http://127.0.0.2:{free_port()}"  # loopback, and nothing listens there

    def settings(port: int) -> Settings:
        return Settings(
            data_dir=tmp_path,
            port=port,
            maps=MapsSettings(
                tile_url=tile_host + "/{z}/{x}/{y}.png", tile_attribution="Test tiles <b>x</b>"
            ),
        )

    with serve(demo_db, settings) as url:
        context, page, recorder = open_map(browser, url, DESKTOP)
        try:
            page.locator("#tiles-status").filter(has_text="could not be loaded").wait_for(
                timeout=10_000
            )
            assert markers_and_clusters(page) > 0
            assert basemap_paths(page) > 20
            # the attribution is the configured text, shown as text
            assert (
                "Test tiles <b>x</b>" in page.locator(".leaflet-control-attribution").inner_text()
            )
            shot = screenshot(page, tmp_path, "map-tiles-unreachable")
            assert recorder.origins() == {url, tile_host}, recorder.origins()
            tile_failures = [c for c in recorder.problems() if "Failed to load resource" in c]
            assert not [c for c in recorder.problems() if c not in tile_failures]
            print(f"screenshot: {shot}")
        finally:
            context.close()


def test_in_spanish_on_a_phone_the_folded_filter_opens_and_reads_in_spanish(
    browser: Any, app_url: str, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=PHONE, locale="es-ES")
    page = context.new_page()
    recorder = record(page)
    try:
        page.goto(f"{app_url}/map")  # Accept-Language es-ES
        page.wait_for_selector("#public-map[data-ready]", state="attached", timeout=20_000)
        assert page.locator("html").get_attribute("lang") == "es"
        assert "avisos" in page.locator("#map-status").inner_text()
        assert not page.locator("#map-filter").is_visible()  # folded on a phone
        page.get_by_text("Filtro y leyenda").click()
        assert page.get_by_role("checkbox", name="Abierto").is_checked()
        assert page.get_by_role("button", name="Acercar").count() == 1
        shot = screenshot(page, tmp_path, "map-phone-es-filter")
        assert not recorder.problems(), recorder.problems()
        assert not audit(page, app_url)
        print(f"screenshot: {shot}")
    finally:
        context.close()
