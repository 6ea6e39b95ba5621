"""Staff sign-in for pages, through the HTTP app on the demo city: passwords, sessions, CSRF,
throttling, and the API answering a signed-in session with the same role checks as tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from geo311.kernel.auth import accounts
from geo311.kernel.auth.passwords import Passwords
from geo311.kernel.database import Database
from geo311.kernel.settings import Settings, SigninSettings
from layers import service as layers_service
from tests.support import (
    give_to_crew,
    move_work_order,
    open_incident_with_reporters,
    pooled_app,
    read_version,
    staff_token,
    work_order_of,
)

PROBLEM = "application/problem+json"
HERE = "http://testserver"  # the test client's origin
SAME = {"Origin": HERE}
# Cheap argon2 for speed; the rehash test raises it.
FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery"


def _settings(tmp_path: Path, **signin: Any) -> Settings:
    return Settings(data_dir=tmp_path, jurisdiction="demo", signin=SigninSettings(**FAST | signin))


def _client(demo_db: Database, settings: Settings) -> TestClient:
    return TestClient(pooled_app(settings, db=demo_db))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path)


@pytest.fixture
def client(demo_db: Database, settings: Settings) -> Iterator[TestClient]:
    with _client(demo_db, settings) as c:
        yield c


def add_user(
    db: Database,
    settings: Settings,
    name: str,
    role: str,
    *,
    crew: str | None = None,
    password: str = PASSWORD,
) -> None:
    from dispatch import service as dispatch_service

    with db.session() as s:
        jurisdiction = layers_service.get_jurisdiction(s, "demo")
        assert jurisdiction is not None
        accounts.create_user(
            s,
            name=name,
            role=role,
            password_hash=Passwords(settings.signin).hash(password),
            jurisdiction_id=jurisdiction.id,
        )
        if crew is not None:
            dispatch_service.set_membership(
                s, jurisdiction_id=jurisdiction.id, user_name=name, crew_code=crew
            )


def login_form(client: TestClient, query: str = "") -> str:
    """Open the sign-in page (which sets the form's cookie) and return the form's token."""
    page = client.get("/login" + query)
    assert page.status_code == 200
    found = re.search(
        r'id="signin">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page.text
    )
    assert found is not None
    return found.group(1)


def sign_in(
    client: TestClient,
    name: str,
    password: str = PASSWORD,
    *,
    next_path: str = "",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    token = login_form(client)
    response: httpx.Response = client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": token, "next": next_path},
        headers=SAME if headers is None else headers,
        follow_redirects=False,
    )
    return response


def csrf(client: TestClient) -> dict[str, str]:
    """Headers a page's script sends with a write: its own Origin and the session's token."""
    me = client.get("/api/v1/session")
    assert me.status_code == 200, me.text
    return {**SAME, "X-CSRF-Token": me.json()["csrf_token"]}


def with_cookie(client: TestClient, session_id: str) -> httpx.Response:
    """GET /api/v1/session from another browser that holds only this session cookie."""
    other = TestClient(client.app)
    response: httpx.Response = other.get(
        "/api/v1/session", headers={"Cookie": f"geo311_session={session_id}"}
    )
    return response


def _job(db: Database, crew: str) -> int:
    work_order_id = work_order_of(db, open_incident_with_reporters(db, [{"email": "r@x.org"}]))
    move_work_order(db, work_order_id, "triaged", "assigned")
    give_to_crew(db, work_order_id, crew)
    return work_order_id


def _work_order(db: Database, work_order_id: int) -> tuple[Any, ...]:
    with db.session() as s:
        return tuple(
            s.execute(
                text(
                    "SELECT status, version, crew_id, "
                    "(SELECT count(*) FROM audit_events WHERE entity = 'work_order' "
                    " AND entity_id = :i) FROM work_orders WHERE id = :i"
                ),
                {"i": work_order_id},
            ).one()
        )


# --- passwords and accounts ----------------------------------------------------------------


def test_a_password_is_stored_as_an_argon2id_hash_and_never_in_clear(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    assert sign_in(client, "ada").status_code == 303
    with demo_db.session() as s:
        stored = s.execute(
            text("SELECT password_hash FROM staff_users WHERE name = 'ada'")
        ).scalar_one()
        dump = s.execute(
            text(
                "SELECT string_agg(t::text, '|') FROM (SELECT * FROM staff_users) t "
                "UNION ALL SELECT string_agg(t::text, '|') FROM (SELECT * FROM staff_sessions) t "
                "UNION ALL SELECT string_agg(t::text, '|') FROM (SELECT * FROM signin_throttle) t"
            )
        ).scalars()
        text_of_tables = " ".join(d or "" for d in dump)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert PASSWORD not in text_of_tables
    # Nor the cookie's session id: only its hash is kept.
    assert client.cookies["geo311_session"] not in text_of_tables


def test_a_changed_hasher_cost_rehashes_the_password_at_the_next_sign_in(
    demo_db: Database, tmp_path: Path
) -> None:
    cheap = _settings(tmp_path)
    add_user(demo_db, cheap, "ada", "admin")
    dearer = _settings(tmp_path, argon2_time_cost=2, argon2_memory_kib=2048)
    with _client(demo_db, dearer) as client:
        assert sign_in(client, "ada").status_code == 303
    with demo_db.session() as s:
        stored = s.execute(
            text("SELECT password_hash FROM staff_users WHERE name = 'ada'")
        ).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    with _client(demo_db, dearer) as client:
        assert sign_in(client, "ada").status_code == 303  # the new hash still signs in


def test_a_wrong_password_and_an_unknown_name_get_the_same_clear_message(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    wrong = sign_in(client, "ada", "not the password at all")
    nobody = sign_in(client, "nobody-here", PASSWORD)
    assert wrong.status_code == nobody.status_code == 401
    message = re.compile(r'<div id="signin-error" class="error" role="alert">([^<]+)</div>')
    said = [message.search(r.text) for r in (wrong, nobody)]
    assert said[0] is not None
    assert said[1] is not None
    assert said[0].group(1) == said[1].group(1)
    assert "name and password do not match" in said[0].group(1)
    assert "geo311_session" not in client.cookies
    assert client.get("/api/v1/session").status_code == 401


def test_the_sign_in_page_speaks_spanish(client: TestClient, demo_db: Database) -> None:
    page = client.get("/login?lang=es")
    assert '<html lang="es">' in page.text
    assert "Contraseña" in page.text
    assert "Entrar" in page.text
    token = login_form(client, "?lang=es")
    failed = client.post(
        "/login",
        data={"name": "x", "password": "y" * 12, "csrf_token": token, "lang": "es"},
        headers=SAME,
    )
    assert "no corresponden a una cuenta activa" in failed.text
    by_browser = client.get("/login", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in by_browser.text


# --- sessions ------------------------------------------------------------------------------


def test_a_signed_in_session_says_who_it_is_and_signs_out(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "sam", "crew", crew="streets")
    signed = sign_in(client, "sam")
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "geo311_session=" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie
    me = client.get("/api/v1/session")
    assert me.status_code == 200
    body = me.json()
    assert (body["name"], body["role"], body["crew"]["code"], body["via"]) == (
        "sam",
        "crew",
        "streets",
        "session",
    )
    assert len(body["csrf_token"]) >= 32
    assert me.headers["cache-control"] == "no-store"
    assert client.get("/api/v1/me").json() == {"name": "sam", "role": "crew"}
    # Signing out needs the token too; then the cookie signs nobody in.
    old = client.cookies["geo311_session"]
    out = client.post(
        "/logout", data={"csrf_token": body["csrf_token"]}, headers=SAME, follow_redirects=False
    )
    assert out.status_code == 303
    assert client.get("/api/v1/session").status_code == 401
    assert with_cookie(client, old).status_code == 401


def test_the_cookie_is_secure_when_the_public_url_is_https(
    demo_db: Database, tmp_path: Path
) -> None:
    settings = _settings(tmp_path).model_copy(update={"public_base_url": "https://city.example"})
    add_user(demo_db, settings, "ada", "admin")
    with TestClient(pooled_app(settings, db=demo_db), base_url="https://city.example") as client:
        signed = sign_in(client, "ada", headers={"Origin": "https://city.example"})
    assert signed.status_code == 303
    assert "Secure" in signed.headers["set-cookie"]


def test_a_session_ends_when_unused_too_long_and_at_its_absolute_expiry(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "dora", "dispatcher")
    sign_in(client, "dora")
    assert client.get("/api/v1/session").status_code == 200
    idle = settings.signin.session_idle_timeout_s
    with demo_db.session() as s:
        s.execute(
            text("UPDATE staff_sessions SET last_seen_at = now() - make_interval(secs => :s)"),
            {"s": idle + 5},
        )
    gone = client.get("/api/v1/session")
    assert gone.status_code == 401
    assert "sign in again" in gone.json()["detail"]
    sign_in(client, "dora")
    assert client.get("/api/v1/session").status_code == 200
    with demo_db.session() as s:
        s.execute(text("UPDATE staff_sessions SET expires_at = now() - interval '1 second'"))
    assert client.get("/api/v1/session").status_code == 401


def test_use_keeps_a_session_alive_past_the_idle_timeout(demo_db: Database, tmp_path: Path) -> None:
    settings = _settings(tmp_path, session_idle_timeout_s=3600)
    add_user(demo_db, settings, "dora", "dispatcher")
    with _client(demo_db, settings) as client:
        sign_in(client, "dora")
        with demo_db.session() as s:  # last used 50 minutes ago: still live
            s.execute(text("UPDATE staff_sessions SET last_seen_at = now() - interval '50 min'"))
        assert client.get("/api/v1/session").status_code == 200
        with demo_db.session() as s:
            seen = s.execute(text("SELECT now() - last_seen_at FROM staff_sessions")).scalar_one()
        assert seen.total_seconds() < 60  # that use was recorded, so the hour starts again


def test_signing_in_never_keeps_a_session_id_the_browser_had_before(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    add_user(demo_db, settings, "pat", "planner")
    # An id planted in the browser before sign-in is not the one signed in.
    client.cookies.set(
        "geo311_session", "planted-by-someone-else-0123456789abcdef", domain="testserver.local"
    )
    sign_in(client, "pat")
    first = client.cookies["geo311_session"]
    assert first != "planted-by-someone-else-0123456789abcdef"
    # Signing in again (as another user) rotates the id and ends the previous session.
    sign_in(client, "ada")
    second = client.cookies["geo311_session"]
    assert second != first
    assert client.get("/api/v1/session").json()["name"] == "ada"
    assert with_cookie(client, first).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_after_sign_in_only_a_path_on_this_site_is_followed(
    client: TestClient, demo_db: Database, settings: Settings, target: str
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    signed = sign_in(client, "ada", next_path=target)
    assert signed.status_code == 303
    assert signed.headers["location"] == "/login?lang=en"


def test_after_sign_in_the_page_asked_for_is_opened(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    signed = sign_in(client, "ada", next_path="/dispatch?day=2026-06-01")
    assert signed.headers["location"] == "/dispatch?day=2026-06-01"


def test_a_disabled_user_loses_sessions_and_tokens_and_cannot_sign_in(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "dora", "dispatcher")
    token = staff_token(demo_db, "dispatcher", "dora")
    bearer = {"Authorization": f"Bearer {token}"}
    sign_in(client, "dora")
    assert client.get("/api/v1/session").status_code == 200
    with demo_db.session() as s:
        from datetime import UTC, datetime

        accounts.disable_user(s, name="dora", now=datetime.now(UTC))
    assert client.get("/api/v1/session").status_code == 401
    client.cookies.clear()
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    again = sign_in(client, "dora")
    assert again.status_code == 401
    assert "name and password do not match" in again.text


# --- CSRF ----------------------------------------------------------------------------------


def test_writes_by_session_need_the_csrf_token_and_our_own_origin(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "dora", "dispatcher")
    job = _job(demo_db, "streets")
    sign_in(client, "dora")
    url = f"/api/v1/work-orders/{job}/hold"
    version = read_version(client, f"/api/v1/work-orders/{job}", {})  # reads need no token
    good = csrf(client)
    before = _work_order(demo_db, job)
    refused = {
        "no token": SAME,
        "wrong token": {**SAME, "X-CSRF-Token": "x" * 43},
        "another site": {**good, "Origin": "http://evil.example"},
        "another port": {**good, "Origin": "http://testserver:8081"},
        "origin null": {**good, "Origin": "null"},
        "no origin": {"X-CSRF-Token": good["X-CSRF-Token"]},
        "another site's page": {
            "X-CSRF-Token": good["X-CSRF-Token"],
            "Referer": "http://evil.example/page",
        },
    }
    for why, headers in refused.items():
        r = client.post(url, json={"reason": "no permit"}, headers={**headers, **version})
        assert r.status_code == 403, (why, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["code"] == "csrf_failed", why
    # A form field carries the token as well as the header does.
    as_form = client.post(
        f"/api/v1/work-orders/{job}/complete",
        data={"resolution_code": "repaired", "csrf_token": "wrong"},
        headers={**SAME, **version},
    )
    assert as_form.status_code == 403
    assert as_form.json()["code"] == "csrf_failed"
    assert _work_order(demo_db, job) == before
    # Our own page, with its token: the write goes through (a Referer alone will do too).
    held = client.post(url, json={"reason": "no permit"}, headers={**good, **version})
    assert held.status_code == 200, held.text
    assert _work_order(demo_db, job)[0] == "on_hold"
    by_referer = {"X-CSRF-Token": good["X-CSRF-Token"], "Referer": f"{HERE}/dispatch"}
    resumed = client.post(
        f"/api/v1/work-orders/{job}/resume",
        json={"expected_version": held.json()["version"]},
        headers=by_referer,
    )
    assert resumed.status_code == 200, resumed.text


def test_a_bearer_token_needs_no_csrf_token(client: TestClient, demo_db: Database) -> None:
    job = _job(demo_db, "streets")
    bearer = {"Authorization": f"Bearer {staff_token(demo_db, 'dispatcher', 'dora')}"}
    version = read_version(client, f"/api/v1/work-orders/{job}", bearer)
    held = client.post(
        f"/api/v1/work-orders/{job}/hold",
        json={"reason": "no permit"},
        headers={**bearer, **version, "Origin": "http://evil.example"},
    )
    assert held.status_code == 200, held.text


def test_signing_in_needs_the_forms_own_token_and_our_origin(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    token = login_form(client)
    fields = {"name": "ada", "password": PASSWORD}
    cross = client.post(
        "/login",
        data={**fields, "csrf_token": token},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    assert cross.headers["content-type"] == PROBLEM
    assert cross.json()["code"] == "csrf_failed"
    no_token = client.post("/login", data=fields, headers=SAME, follow_redirects=False)
    assert no_token.status_code == 403
    assert "out of date" in no_token.text
    client.cookies.delete("geo311_login_csrf", path="/login")
    no_cookie = client.post(
        "/login", data={**fields, "csrf_token": token}, headers=SAME, follow_redirects=False
    )
    assert no_cookie.status_code == 403
    assert "geo311_session" not in client.cookies
    with demo_db.session() as s:
        assert s.execute(text("SELECT count(*) FROM staff_sessions")).scalar_one() == 0


def test_signing_out_from_another_site_is_refused(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "ada", "admin")
    sign_in(client, "ada")
    token = client.get("/api/v1/session").json()["csrf_token"]
    for headers, data in (
        ({"Origin": "http://evil.example"}, {"csrf_token": token}),
        (SAME, {}),
    ):
        r = client.post("/logout", data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403
        assert r.json()["code"] == "csrf_failed"
    assert client.get("/api/v1/session").status_code == 200


# --- the API, signed in: the same role checks as tokens ------------------------------------


def test_a_crew_user_signed_in_acts_on_its_crews_work_only(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "wanda", "crew", crew="water")
    ours = _job(demo_db, "water")
    theirs = _job(demo_db, "streets")
    sign_in(client, "wanda")
    headers = csrf(client)
    before = _work_order(demo_db, theirs)
    version = read_version(client, f"/api/v1/work-orders/{theirs}", {})
    refused = client.post(
        f"/api/v1/work-orders/{theirs}/transitions",
        json={"to": "in_progress"},
        headers={**headers, **version},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert "not your crew's work" in refused.json()["detail"]
    assert _work_order(demo_db, theirs) == before
    started = client.post(
        f"/api/v1/work-orders/{ours}/transitions",
        json={"to": "in_progress"},
        headers={**headers, **read_version(client, f"/api/v1/work-orders/{ours}", {})},
    )
    assert started.status_code == 200, started.text
    # A role the route does not allow is refused just as with a token.
    assert client.get("/api/v1/webhooks").status_code == 403


# --- slowing down repeated failures --------------------------------------------------------


def test_repeated_failures_on_an_account_wait_then_the_right_password_works(
    demo_db: Database, tmp_path: Path
) -> None:
    settings = _settings(
        tmp_path, throttle_account_free=3, throttle_base_delay_s=1.0, throttle_max_delay_s=4.0
    )
    add_user(demo_db, settings, "ada", "admin")
    with _client(demo_db, settings) as client:
        for _ in range(3):
            assert sign_in(client, "ada", "wrong guess here").status_code == 401
        blocked = sign_in(client, "ada")  # even the right password waits: it is not checked
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == "1"
        assert "Wait 1 seconds" in blocked.text
        assert "geo311_session" not in client.cookies
        time.sleep(1.1)
        # The wait grows with each failure, up to the cap.
        assert sign_in(client, "ada", "wrong guess again").status_code == 401
        assert sign_in(client, "ada").headers["retry-after"] == "2"
        time.sleep(2.1)
        assert sign_in(client, "ada").status_code == 303
        # Success cleared the account's count: one more mistake is not held against it.
        client.cookies.clear()
        assert sign_in(client, "ada", "a typo in it").status_code == 401
        assert sign_in(client, "ada").status_code == 303


def test_repeated_failures_from_one_address_slow_down_every_name_it_tries(
    demo_db: Database, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, throttle_account_free=50, throttle_address_free=4)
    add_user(demo_db, settings, "ada", "admin")
    with _client(demo_db, settings) as client:
        for i in range(4):
            assert sign_in(client, f"guess-{i}", "whatever password").status_code == 401
        blocked = sign_in(client, "ada")
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
    with demo_db.session() as s:
        keys = set(s.execute(text("SELECT key FROM signin_throttle")).scalars())
    assert "addr:testclient" in keys
    assert "name:guess-0" in keys


def test_a_new_password_signs_the_user_out_everywhere(
    client: TestClient, demo_db: Database, settings: Settings
) -> None:
    add_user(demo_db, settings, "pat", "planner")
    sign_in(client, "pat")
    assert client.get("/api/v1/session").status_code == 200
    with demo_db.session() as s:
        ended = accounts.set_password(
            s, name="pat", password_hash=Passwords(settings.signin).hash("a brand new password")
        )
    assert ended == 1
    assert client.get("/api/v1/session").status_code == 401
    assert sign_in(client, "pat").status_code == 401
    assert sign_in(client, "pat", "a brand new password").status_code == 303


def test_the_wait_doubles_after_the_free_failures_up_to_the_cap() -> None:
    from geo311.kernel.auth.throttle import Policy, delay_s

    policy = Policy(
        window_s=900, account_free=3, address_free=20, base_delay_s=1.0, max_delay_s=300.0
    )
    waits = [delay_s(n, free=3, policy=policy) for n in range(1, 13)]
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert delay_s(10_000, free=3, policy=policy) == 300


def test_the_sign_in_page_is_in_the_pages_shell_and_its_language_switch_keeps_next(
    client: TestClient, demo_db: Database
) -> None:
    page: Any = lxml.html.fromstring(client.get("/login?next=/planner&lang=es").text)
    header = page.xpath("//header[@class='site-header']")[0]
    assert [a.get("href") for a in header.xpath(".//nav[@class='site-nav']//a")] == [
        "/report",
        "/map",
    ]
    switch = {
        a.get("hreflang"): a.get("href") for a in header.xpath(".//nav[@class='languages']//a")
    }
    assert switch == {
        "en": "/login?next=%2Fplanner&lang=en",
        "es": "/login?next=%2Fplanner&lang=es",
    }
    # no "sign in" link on the sign-in page itself; the form keeps where to go next
    assert header.xpath(".//a[starts-with(@href, '/login')]") == list(
        header.xpath(".//nav[@class='languages']//a")
    )
    assert page.xpath("//form[@id='signin']/input[@name='next']/@value") == ["/planner"]
    assert page.xpath("//main//h1/text()") == ["Acceso del personal"]
