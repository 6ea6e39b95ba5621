"""Who may read /dev/mail: the caught mails carry residents' addresses and signed links."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from geo311.kernel.database import Database
from geo311.kernel.notify.mailcatcher import MailCatcher, maildir_path
from geo311.kernel.settings import DevMailSettings, Settings
from tests.conftest import LiveServer
from tests.support import free_port, notify_settings, pooled_app, staff_token

SUBJECT = "Your report RQ-TEST was received"
LOOPBACK = ("127.0.0.1", 50000)
ELSEWHERE = ("203.0.113.7", 50000)


@pytest.fixture
def caught(tmp_path: Path) -> Iterator[Settings]:
    """Settings with the dev mail catcher on, holding one caught mail."""
    port = free_port()
    settings = notify_settings(tmp_path, port, dev_mail=DevMailSettings(enabled=True, port=port))
    catcher = MailCatcher(maildir_path(settings), port=port)
    assert catcher.start()
    try:
        message = EmailMessage()
        message["From"] = "no-reply@geo311.localhost"
        message["To"] = "resident@example.org"
        message["Subject"] = SUBJECT
        message.set_content("Not fixed? http://x/notices/answer?t=signed")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
        yield settings
    finally:
        catcher.stop()


def _get(
    settings: Settings,
    db: Database,
    *,
    client: tuple[str, int],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    with TestClient(pooled_app(settings, db=db), client=client) as test_client:
        response: httpx.Response = test_client.get("/dev/mail", headers=headers or {})
        return response


def test_who_may_read_the_dev_mail_catcher(caught: Settings, db: Database) -> None:
    admin = {"Authorization": f"Bearer {staff_token(db, 'admin')}"}
    dispatcher = {"Authorization": f"Bearer {staff_token(db, 'dispatcher')}"}
    answers = {
        "a browser on this machine": _get(caught, db, client=LOOPBACK),
        "this machine over IPv6": _get(caught, db, client=("::1", 50000)),
        "anyone elsewhere": _get(caught, db, client=ELSEWHERE),
        "an admin elsewhere": _get(caught, db, client=ELSEWHERE, headers=admin),
        "a dispatcher elsewhere": _get(caught, db, client=ELSEWHERE, headers=dispatcher),
        "a dispatcher on this machine": _get(caught, db, client=LOOPBACK, headers=dispatcher),
        "a forged token": _get(
            caught, db, client=ELSEWHERE, headers={"Authorization": "Bearer nope"}
        ),
        # A reverse proxy on this machine makes every visitor look local; its headers say
        # where the request really came from.
        "through a proxy on this machine": _get(
            caught, db, client=LOOPBACK, headers={"X-Forwarded-For": "198.51.100.4"}
        ),
        "through a proxy (RFC 7239)": _get(
            caught, db, client=LOOPBACK, headers={"Forwarded": "for=198.51.100.4"}
        ),
    }
    expected = {
        "a browser on this machine": 200,
        "this machine over IPv6": 200,
        "anyone elsewhere": 403,
        "an admin elsewhere": 200,
        "a dispatcher elsewhere": 403,
        "a dispatcher on this machine": 403,
        "a forged token": 401,
        "through a proxy on this machine": 403,
        "through a proxy (RFC 7239)": 403,
    }
    assert {who: r.status_code for who, r in answers.items()} == expected
    for who, response in answers.items():
        if response.status_code == 200:
            assert SUBJECT in response.text, who
        else:
            assert SUBJECT not in response.text, who
            assert "resident@example.org" not in response.text, who


def test_the_dev_mail_catcher_is_never_served_for_a_real_city(
    caught: Settings, db: Database
) -> None:
    admin = {"Authorization": f"Bearer {staff_token(db, 'admin')}"}
    # An external database means a real city, even with the catcher switched on by hand.
    external = caught.model_copy(deep=True)
    external.db.url = SecretStr(db.engine.url.render_as_string(hide_password=False))
    off = caught.model_copy(deep=True)
    off.notify.dev_mail.enabled = False
    for settings in (external, off):
        for client, headers in ((LOOPBACK, {}), (ELSEWHERE, admin)):
            response = _get(settings, db, client=client, headers=headers)
            assert response.status_code == 404
            assert SUBJECT not in response.text


def test_the_dev_mail_page_opens_from_a_browser_on_this_machine(
    live_server: LiveServer,
) -> None:
    # The live server's own settings: embedded-style (no database URL), catcher on by default.
    assert live_server.settings.dev_mail_enabled
    response = httpx.get(f"{live_server.url}/dev/mail", timeout=10)
    assert response.status_code == 200
    proxied = httpx.get(
        f"{live_server.url}/dev/mail", headers={"X-Forwarded-For": "198.51.100.4"}, timeout=10
    )
    assert proxied.status_code == 403
    # uvicorn takes a loopback proxy's X-Forwarded-For as the client address: a visitor who
    # claims to be 127.0.0.1 through the proxy is still refused.
    spoofed = httpx.get(
        f"{live_server.url}/dev/mail", headers={"X-Forwarded-For": "127.0.0.1"}, timeout=10
    )
    assert spoofed.status_code == 403
