"""Staff sign-in, used as a person would, in headless Chromium: every role signs in and out,
a wrong password gets a clear message, another site's form cannot act with the session, and
an accessibility audit of the page."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fixtures.demo_users import DemoSignin, ensure_demo_signins
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import SigninSettings
from tests.conftest import LiveServer
from tests.support import (
    free_port,
    give_to_crew,
    move_work_order,
    open_incident_with_reporters,
    work_order_of,
)

ROOT = Path(__file__).resolve().parents[2]
# axe-core from its npm package: the pages' pinned packages under maps/ (installed by
# `make test`), or a copy named by GEO311_AXE_JS. Never committed to this repository.
AXE_CANDIDATES = [
    Path(os.environ["GEO311_AXE_JS"]) if os.environ.get("GEO311_AXE_JS") else None,
    ROOT / "maps" / "node_modules" / "axe-core" / "axe.min.js",
]
ROLE_WORDS = {"crew": "crew", "dispatcher": "dispatcher", "planner": "planner", "admin": "admin"}


@pytest.fixture
def demo_signins(demo_db: Database) -> dict[str, DemoSignin]:
    cheap = SigninSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
    found = ensure_demo_signins(demo_db, slug="demo", passwords=Passwords(cheap))
    return {d.role: d for d in found}


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 800, "height": 1280})  # a tablet
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def _sign_in(page: Any, base: str, demo: DemoSignin, password: str | None = None) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Name").fill(demo.name)
    page.get_by_label("Password").fill(password if password is not None else demo.password)
    page.get_by_role("button", name="Sign in").click()


def _session(page: Any) -> dict[str, Any]:
    """What the page's own script would learn from GET /api/v1/session."""
    result: dict[str, Any] = page.evaluate(
        """async () => { const r = await fetch('/api/v1/session');
                         return { status: r.status, body: await r.json() }; }"""
    )
    return result


def test_each_role_signs_in_and_out(
    page: Any, live_server: LiveServer, demo_signins: dict[str, DemoSignin], tmp_path: Path
) -> None:
    assert sorted(demo_signins) == sorted(ROLE_WORDS)
    for role, demo in demo_signins.items():
        _sign_in(page, live_server.url, demo)
        who = page.locator("#who")
        who.wait_for(timeout=10_000)
        said = who.inner_text()
        assert f"Signed in as {demo.name} ({ROLE_WORDS[role]})" in said
        if role == "crew":
            assert "Crew: streets." in said
        seen = _session(page)
        assert seen["status"] == 200
        assert (seen["body"]["name"], seen["body"]["role"]) == (demo.name, role)
        assert seen["body"]["via"] == "session"
        assert seen["body"]["csrf_token"]
        if role == "dispatcher":
            page.screenshot(path=str(tmp_path / "signed-in-dispatcher.png"))
        page.get_by_role("button", name="Sign out").click()
        page.get_by_text("You are signed out.").wait_for(timeout=10_000)
        assert page.locator("#who").count() == 0
        assert _session(page)["status"] == 401


def test_a_wrong_password_says_so_clearly_without_saying_which_part(
    page: Any, live_server: LiveServer, demo_signins: dict[str, DemoSignin], tmp_path: Path
) -> None:
    page.goto(f"{live_server.url}/login")
    page.screenshot(path=str(tmp_path / "login.png"), full_page=True)
    _sign_in(page, live_server.url, demo_signins["planner"], password="not-my-password-at-all")
    alert = page.get_by_role("alert")
    alert.wait_for(timeout=10_000)
    message = alert.inner_text()
    assert "that name and password do not match an active staff account" in message
    assert page.get_by_label("Name").input_value() == "demo-planner"  # kept for the retry
    assert page.get_by_label("Password").input_value() == ""
    assert page.get_by_label("Password").get_attribute("aria-describedby") == "signin-error"
    page.screenshot(path=str(tmp_path / "login-failed.png"), full_page=True)
    # An unknown name reads exactly the same.
    _sign_in(page, live_server.url, DemoSignin("nobody-at-all", "admin", "whatever-it-is"))
    assert page.get_by_role("alert").inner_text() == message
    # The page in Spanish.
    page.goto(f"{live_server.url}/login?lang=es")
    assert page.get_by_label("Contraseña").is_visible()
    page.screenshot(path=str(tmp_path / "login-es.png"), full_page=True)


class _Site(BaseHTTPRequestHandler):
    """Another site (another origin on this machine) whose page posts forms to geo311."""

    html = ""

    def do_GET(self) -> None:
        body = self.html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_site() -> Iterator[tuple[str, type[_Site]]]:
    handler = type("OtherSite", (_Site,), {})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _state(db: Database, work_order_id: int) -> tuple[Any, ...]:
    with db.session() as s:
        return tuple(
            s.execute(
                text("SELECT status, version FROM work_orders WHERE id = :i"), {"i": work_order_id}
            ).one()
        )


def test_another_sites_form_cannot_act_with_the_session(
    page: Any,
    live_server: LiveServer,
    demo_db: Database,
    demo_signins: dict[str, DemoSignin],
    other_site: tuple[str, type[_Site]],
) -> None:
    job = work_order_of(demo_db, open_incident_with_reporters(demo_db, [{"email": "r@x.org"}]))
    move_work_order(demo_db, job, "triaged", "assigned")
    give_to_crew(demo_db, job, "streets")
    before = _state(demo_db, job)
    _sign_in(page, live_server.url, demo_signins["dispatcher"])
    page.locator("#who").wait_for(timeout=10_000)
    # 127.0.0.1 on another port: the same site, so the browser does send the Lax cookie with
    # the form: only the CSRF checks stand in the way.
    origin, site = other_site
    site.html = (
        "<!doctype html><html lang='en'><title>Win a prize</title><body>"
        f"<form method='post' action='{live_server.url}/api/v1/work-orders/{job}/hold'>"
        f"<input type='hidden' name='reason' value='pwned'>"
        f"<input type='hidden' name='expected_version' value='{before[1]}'>"
        "<button id='hold'>Claim</button></form>"
        f"<form method='post' action='{live_server.url}/logout'>"
        "<button id='logout'>Or this</button></form></body></html>"
    )
    for button in ("#hold", "#logout"):
        page.goto(origin)
        with page.expect_navigation():
            page.click(button)
        refused = json.loads(page.locator("body").inner_text())
        assert (refused["status"], refused["code"]) == (403, "csrf_failed"), refused
    assert _state(demo_db, job) == before
    # Still signed in: the other site could not sign the dispatcher out either.
    page.goto(f"{live_server.url}/login")
    assert "demo-dispatcher" in page.locator("#who").inner_text()
    # A script of our own page, sending the token, does act (its page sends an Origin).
    held = page.evaluate(
        """async ([job, version]) => {
             const s = await (await fetch('/api/v1/session')).json();
             const r = await fetch(`/api/v1/work-orders/${job}/hold`, {
               method: 'POST',
               headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token},
               body: JSON.stringify({reason: 'no permit', expected_version: version})});
             return r.status; }""",
        [job, before[1]],
    )
    assert held == 200
    assert _state(demo_db, job)[0] == "on_hold"


def _axe_source() -> str | None:
    for candidate in AXE_CANDIDATES:
        if candidate is not None and candidate.is_file():
            return candidate.read_text()
    return None


def test_the_sign_in_page_passes_an_accessibility_audit(
    page: Any, live_server: LiveServer, demo_signins: dict[str, DemoSignin]
) -> None:
    source = _axe_source()
    if source is None:
        pytest.skip(
            "axe-core is not installed: the pages' npm packages (maps/node_modules/axe-core) "
            "are not there yet; set GEO311_AXE_JS to an axe.min.js to run this audit"
        )
    for url in ("/login", "/login?lang=es"):
        page.goto(live_server.url + url)
        _audit(page, source, url)
    _sign_in(page, live_server.url, demo_signins["crew"], password="a wrong password")
    page.get_by_role("alert").wait_for(timeout=10_000)
    _audit(page, source, "/login (failed)")
    _sign_in(page, live_server.url, demo_signins["crew"])
    page.locator("#who").wait_for(timeout=10_000)
    _audit(page, source, "/login (signed in)")


def _audit(page: Any, source: str, what: str) -> None:
    # Evaluated through the browser's debugging protocol, which the page's CSP does not
    # govern: the page itself still runs no inline script.
    page.evaluate(source)
    result = page.evaluate("async () => await axe.run(document)")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{what}:\n" + "\n".join(serious)
    assert result["passes"], what  # the audit did run its rules


def test_the_map_page_header_says_who_is_signed_in_and_signs_out(
    page: Any, live_server: LiveServer, demo_signins: dict[str, DemoSignin], tmp_path: Path
) -> None:
    base = live_server.url
    page.goto(f"{base}/map")
    sign_in = page.get_by_role("link", name="Staff sign-in")
    sign_in.click()
    demo = demo_signins["dispatcher"]
    page.get_by_label("Name").fill(demo.name)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Sign in").click()
    # Back on the map it came from, with the name in the header.
    page.wait_for_url(f"{base}/map*", timeout=10_000)
    header = page.locator("header.site-header")
    header.get_by_text(demo.name).wait_for(timeout=10_000)
    page.get_by_text("reports shown").wait_for(timeout=15_000)
    page.screenshot(path=str(tmp_path / "map-signed-in.png"))
    header.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for(timeout=10_000)
    assert _session(page)["status"] == 401
    page.goto(f"{base}/map")
    assert page.get_by_role("link", name="Staff sign-in").count() == 1
