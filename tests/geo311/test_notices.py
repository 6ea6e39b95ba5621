"""Closure notices through the real queue, to a real SMTP server on loopback."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import text

from geo311.kernel.database import Database
from geo311.kernel.notify import outbox, signing
from geo311.kernel.notify import runner as notify_runner
from geo311.kernel.notify.mailcatcher import MailCatcher, maildir_path
from geo311.kernel.notify.worker import BackgroundWorker
from geo311.kernel.settings import DevMailSettings, NotifySettings, Settings, SmsSettings
from tests.support import (
    LINK_SECRET,
    Caught,
    FakeTwilio,
    HttpCall,
    RecordingServer,
    SmtpSink,
    body_text,
    free_port,
    give_to_crew,
    jpeg,
    move_work_order,
    notice_rows,
    notify_settings,
    open_incident_with_reporters,
    pooled_app,
    read_version,
    smtp_sink,
    staff_token,
    wait_until,
    ward_point,
    work_order_of,
)

REPORTERS = [
    {"email": "ana@example.org", "language": "en"},
    {"email": "bea@example.org", "language": "es"},
    {"email": "cal@example.org", "language": "en"},
]


def _all_sent(db: Database, kind: str, count: int) -> bool:
    rows = notice_rows(db, kind=kind)
    return len(rows) == count and all(r.status == "sent" for r in rows)


def test_closing_an_incident_with_three_merged_reports_mails_each_reporter_once_with_the_photo(
    demo_db: Database, tmp_path: Path
) -> None:
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        incident_id = open_incident_with_reporters(demo_db, REPORTERS)
        work_order_id = work_order_of(demo_db, incident_id)
        move_work_order(demo_db, work_order_id, "triaged", "assigned", "in_progress")
        give_to_crew(demo_db, work_order_id, "streets")
        crew = staff_token(demo_db, "crew", crew="streets")
        with BackgroundWorker(settings, demo_db):
            assert wait_until(lambda: _all_sent(demo_db, "received", 3))
            sink.clear()
            with TestClient(pooled_app(settings, db=demo_db)) as client:
                auth = {"Authorization": f"Bearer {crew}"}
                response = client.post(
                    f"/api/v1/work-orders/{work_order_id}/complete",
                    headers={
                        **auth,
                        **read_version(client, f"/api/v1/work-orders/{work_order_id}", auth),
                    },
                    files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
                    data={"note": "Filled and rolled", "resolution_code": "repaired"},
                )
                assert response.status_code == 200, response.text
                photo_url = response.json()["after_photo_url"]
                public = client.get(photo_url.replace("http://testserver", "")).content
            assert wait_until(lambda: _all_sent(demo_db, "closed", 3))
            time.sleep(0.3)  # anything extra would arrive now
        mails = sink.messages()
    assert sorted(str(m["To"]) for m in mails) == sorted(r["email"] for r in REPORTERS)
    assert len({str(m["Message-ID"]) for m in mails}) == 3
    for mail in mails:
        images = [p for p in mail.walk() if p.get_content_type() == "image/jpeg"]
        assert len(images) == 1
        data = images[0].get_payload(decode=True)
        assert isinstance(data, bytes)
        assert data == public
        assert not Image.open(io.BytesIO(data)).getexif()
        html = body_text(mail, "html")
        assert 'src="cid:after-photo"' in html
        assert "/notices/answer?t=" in body_text(mail)
        # The crew's note is staff words: the resident reads the resolution's public wording.
        assert "Filled and rolled" not in body_text(mail)
        assert "Filled and rolled" not in html
        assert str(mail["List-Unsubscribe"]).startswith("<http://")
        assert str(mail["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    languages = {str(m["To"]): str(m["Content-Language"]) for m in mails}
    assert languages == {"ana@example.org": "en", "bea@example.org": "es", "cal@example.org": "en"}
    subjects = {str(m["To"]): str(m["Subject"]) for m in mails}
    assert subjects["bea@example.org"].startswith("Resuelto: Bache")
    assert subjects["ana@example.org"].startswith("Fixed: Pothole")


def _complete(client: TestClient, token: str, work_order_id: int) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    response = client.post(
        f"/api/v1/work-orders/{work_order_id}/complete",
        headers={**auth, **read_version(client, f"/api/v1/work-orders/{work_order_id}", auth)},
        files={"photo": ("after.jpg", jpeg(), "image/jpeg")},
        data={"note": "Done", "resolution_code": "repaired"},
    )
    assert response.status_code == 200, response.text


def _statuses(db: Database) -> list[str]:
    return [r.status for r in notice_rows(db)]


def test_with_the_smtp_server_down_nothing_is_lost_and_each_notice_arrives_once_it_is_back(
    demo_db: Database, tmp_path: Path
) -> None:
    sink = SmtpSink()  # not listening yet: the mail server is down
    settings = notify_settings(tmp_path, sink.port)
    incident_id = open_incident_with_reporters(demo_db, REPORTERS)
    work_order_id = work_order_of(demo_db, incident_id)
    move_work_order(demo_db, work_order_id, "triaged", "assigned", "in_progress")
    give_to_crew(demo_db, work_order_id, "streets")
    crew = staff_token(demo_db, "crew", crew="streets")
    with BackgroundWorker(settings, demo_db):
        with TestClient(pooled_app(settings, db=demo_db)) as client:
            _complete(client, crew, work_order_id)
        # Every notice was tried more than once and is waiting for the next try.
        assert wait_until(
            lambda: all(r.status == "retry" and r.attempts >= 2 for r in notice_rows(demo_db))
        )
        assert len(notice_rows(demo_db)) == 6
        sink.start()
        try:
            assert wait_until(lambda: set(_statuses(demo_db)) == {"sent"}, timeout_s=30)
            time.sleep(0.5)
        finally:
            sink.stop()
    mails = sink.messages()
    keys = [str(m["X-Geo311-Notice"]) for m in mails]
    assert sorted(keys) == sorted(r.idempotency_key for r in notice_rows(demo_db))
    assert len(set(keys)) == len(keys) == 6
    closed = [m for m in mails if str(m["X-Geo311-Notice"]).startswith("closed:")]
    assert len(closed) == 3
    assert all(any(p.get_content_type() == "image/jpeg" for p in m.walk()) for m in closed)


def test_a_refused_message_is_retried_if_the_server_says_later_and_failed_if_it_says_never(
    demo_db: Database, tmp_path: Path
) -> None:
    tries: dict[str, int] = {}

    def reply(caught: Caught) -> str:
        to = caught.rcpt_tos[0]
        tries[to] = tries.get(to, 0) + 1
        if to.startswith("gone"):
            return "550 5.1.1 No such mailbox"
        return "451 4.3.0 Try again later" if tries[to] == 1 else "250 OK"

    with smtp_sink(reply=reply) as sink:
        settings = notify_settings(tmp_path, sink.port)
        open_incident_with_reporters(
            demo_db, [{"email": "later@example.org"}, {"email": "gone@example.org"}]
        )
        with BackgroundWorker(settings, demo_db):
            assert wait_until(lambda: sorted(_statuses(demo_db)) == ["failed", "sent"])
            time.sleep(0.5)
        accepted = [str(m["To"]) for m in sink.messages()]
    rows = {r.recipient: r for r in notice_rows(demo_db)}
    assert accepted == ["later@example.org"]
    assert rows["later@example.org"].attempts == 2
    assert rows["gone@example.org"].status == "failed"
    assert rows["gone@example.org"].attempts == 1
    assert tries == {"later@example.org": 2, "gone@example.org": 1}


def test_killing_the_worker_mid_batch_and_restarting_it_sends_no_duplicates(
    demo_db: Database, tmp_path: Path
) -> None:
    reporters = [{"email": f"r{i:02d}@example.org"} for i in range(40)]
    incident_id = open_incident_with_reporters(demo_db, reporters)
    move_work_order(
        demo_db, work_order_of(demo_db, incident_id), "triaged", "assigned", "completed"
    )
    assert len(notice_rows(demo_db)) == 80  # "received" and "closed" for each reporter
    worker: dict[str, subprocess.Popen[bytes]] = {}

    def kill_on_the_30th(count: int, _: object) -> None:
        # The message is in; the worker dies before it reads "250": the worst moment.
        if count == 30:
            worker["proc"].send_signal(signal.SIGKILL)

    with smtp_sink(on_message=kill_on_the_30th, delay_s=0.01) as sink:
        settings = notify_settings(tmp_path, sink.port)
        env = {
            **os.environ,
            "GEO311_DB__URL": demo_db.engine.url.render_as_string(hide_password=False),
            "GEO311_DATA_DIR": str(tmp_path),
            "GEO311_JURISDICTION": "demo",
            "GEO311_NOTIFY__SMTP__PORT": str(sink.port),
            "GEO311_NOTIFY__LINK_SECRET": LINK_SECRET,
            "GEO311_NOTIFY__WORKER_CONCURRENCY": "2",
            "GEO311_NOTIFY__POLL_INTERVAL_S": "0.1",
            "GEO311_NOTIFY__HEARTBEAT_INTERVAL_S": "0.3",
            "GEO311_NOTIFY__STALLED_WORKER_S": "1",
        }
        worker["proc"] = subprocess.Popen(
            [sys.executable, "-m", "geo311.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert worker["proc"].wait(timeout=60) == -signal.SIGKILL
        # The other connection may have finished its message in that same instant.
        assert 30 <= len(sink.caught) <= 31
        thirtieth = str(sink.caught[29].message["X-Geo311-Notice"])
        left = [r for r in notice_rows(demo_db) if r.status in ("pending", "retry")]
        assert left, "the kill must come mid-batch, with notices still owed"
        time.sleep(1.5)  # the dead worker's heartbeat goes stale
        with BackgroundWorker(settings, demo_db):
            assert wait_until(
                lambda: set(_statuses(demo_db)) <= {"sent", "uncertain"}, timeout_s=30
            )
        mails = sink.messages()
    rows = {r.idempotency_key: r for r in notice_rows(demo_db)}
    keys = [str(m["X-Geo311-Notice"]) for m in mails]
    assert len(keys) == len(set(keys)), "a notice was sent twice"
    sent = {k for k, r in rows.items() if r.status == "sent"}
    uncertain = {k for k, r in rows.items() if r.status == "uncertain"}
    assert sent <= set(keys)
    # At most one message per connection was in flight when the worker died; the one the
    # server took in that instant is among them, and it was not sent again.
    assert 1 <= len(uncertain) <= 2
    assert set(keys) - sent <= uncertain
    assert rows[thirtieth].status == "uncertain"
    assert keys.count(thirtieth) == 1
    assert len(sent) + len(uncertain) == 80


def _path(url: str) -> str:
    """Return the path and query of an absolute URL, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _links(mail: EmailMessage) -> dict[str, str]:
    text = body_text(mail)
    by_kind: dict[str, str] = {}
    for url in re.findall(r"https?://\S+/notices/\w+\?\S+", text):
        if "a=not_fixed" in url:
            by_kind["not_fixed"] = _path(url)
        elif "a=fixed" in url:
            by_kind["fixed"] = _path(url)
        elif "/notices/preferences" in url:
            by_kind["preferences"] = _path(url)
    return by_kind


def test_not_fixed_from_the_closure_mail_reopens_the_incident_and_requeues_the_work(
    demo_db: Database, tmp_path: Path
) -> None:
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        incident_id = open_incident_with_reporters(demo_db, [{"email": "dan@example.org"}])
        work_order_id = work_order_of(demo_db, incident_id)
        move_work_order(demo_db, work_order_id, "triaged", "assigned", "in_progress")
        give_to_crew(demo_db, work_order_id, "streets")
        crew = staff_token(demo_db, "crew", crew="streets")
        dispatcher = {"Authorization": f"Bearer {staff_token(demo_db, 'dispatcher')}"}
        with (
            BackgroundWorker(settings, demo_db),
            TestClient(pooled_app(settings, db=demo_db)) as client,
        ):
            _complete(client, crew, work_order_id)
            closure = _wait_mail(sink, "closed:")
            links = _links(closure)
            # Opening the link (as a mail scanner would) changes nothing.
            page = client.get(links["not_fixed"])
            assert page.status_code == 200
            assert 'value="not_fixed"' in page.text
            incident = client.get(f"/api/v1/incidents/{incident_id}", headers=dispatcher).json()
            assert incident["status"] == "closed"
            token = parse_qs(urlsplit(links["not_fixed"]).query)["t"][0]
            answer = client.post("/notices/answer", data={"t": token, "answer": "not_fixed"})
            assert answer.status_code == 200
            assert "reopened your report" in answer.text
            incident = client.get(f"/api/v1/incidents/{incident_id}", headers=dispatcher).json()
            assert incident["status"] == "reopened"
            assert incident["work_order"]["status"] == "reopened"
            assert incident["work_order"]["crew_id"] is None
            queue = client.get(
                "/api/v1/work-orders", params={"status": "reopened"}, headers=dispatcher
            ).json()
            assert work_order_id in [w["id"] for w in queue]
            again = client.post("/notices/answer", data={"t": token, "answer": "not_fixed"})
            assert "already back in the work queue" in again.text
            # Fixed again: the old notice's link no longer reopens anything.
            move_work_order(demo_db, work_order_id, "assigned", "in_progress")
            give_to_crew(demo_db, work_order_id, "streets")  # reopened work had lost its crew
            _complete(client, crew, work_order_id)
            old = client.post(
                "/api/v1/notices/answer", json={"token": token, "answer": "not_fixed"}
            )
            assert old.json()["outcome"] == "outdated"
            assert (
                client.get(f"/api/v1/incidents/{incident_id}", headers=dispatcher).json()["status"]
                == "closed"
            )
            forged = client.post("/notices/answer", data={"t": token + "x", "answer": "fixed"})
            assert forged.status_code == 400


def _wait_mail(sink: SmtpSink, key_prefix: str, count: int = 1) -> EmailMessage:
    def found() -> list[EmailMessage]:
        return [m for m in sink.messages() if str(m["X-Geo311-Notice"]).startswith(key_prefix)]

    assert wait_until(lambda: len(found()) >= count)
    return found()[-1]


def test_a_requester_who_opts_out_of_closure_notices_gets_none(
    demo_db: Database, tmp_path: Path
) -> None:
    with smtp_sink() as sink:
        settings = notify_settings(tmp_path, sink.port)
        incident_id = open_incident_with_reporters(
            demo_db, [{"email": "quiet@example.org"}, {"email": "loud@example.org"}]
        )
        work_order_id = work_order_of(demo_db, incident_id)
        with (
            BackgroundWorker(settings, demo_db),
            TestClient(pooled_app(settings, db=demo_db)) as client,
        ):
            received = next(m for m in sink.wait_for(2) if str(m["To"]) == "quiet@example.org")
            preferences = _links(received)["preferences"]
            page = client.get(preferences)
            assert page.status_code == 200
            token = parse_qs(urlsplit(preferences).query)["t"][0]
            saved = client.post(
                "/notices/preferences", data={"t": token, "kinds": ["received", "scheduled"]}
            )
            assert saved.status_code == 200
            assert 'value="closed">' in saved.text  # the closure box is now unticked
            unsubscribe = str(received["List-Unsubscribe"]).strip("<>")
            assert "/notices/unsubscribe?t=" in unsubscribe
            move_work_order(demo_db, work_order_id, "triaged", "assigned", "scheduled")
            _wait_mail(sink, "scheduled:", count=2)
            one_click = client.post(_path(unsubscribe))
            assert one_click.status_code == 200
            move_work_order(demo_db, work_order_id, "completed")
            _wait_mail(sink, "closed:")
            time.sleep(0.3)
        closures = [m for m in sink.messages() if str(m["X-Geo311-Notice"]).startswith("closed:")]
    assert [str(m["To"]) for m in closures] == ["loud@example.org"]


def test_sms_goes_through_the_provider_adapter_and_is_retried_after_a_503(
    demo_db: Database, tmp_path: Path
) -> None:
    fake = FakeTwilio(fail_first=1)
    with fake.server:
        settings = notify_settings(
            tmp_path,
            1,
            sms=SmsSettings(
                provider="twilio",
                base_url=fake.server.url,
                account_sid=FakeTwilio.SID,
                auth_token=SecretStr(FakeTwilio.TOKEN),
                from_number="+15550001111",
            ),
        )
        incident_id = open_incident_with_reporters(
            demo_db,
            [{"phone": "+15557654321", "language": "es"}, {"phone": "555 1234", "language": "en"}],
        )
        work_order_id = work_order_of(demo_db, incident_id)
        with BackgroundWorker(settings, demo_db):
            assert wait_until(lambda: set(_statuses(demo_db)) == {"sent", "failed"})
            move_work_order(demo_db, work_order_id, "triaged", "assigned", "completed")
            assert wait_until(lambda: len(fake.messages) == 2)
        calls = fake.server.calls
    rows = {r.recipient: r for r in notice_rows(demo_db)}
    assert rows["555 1234"].status == "failed"  # the provider refuses the number: no retry
    assert rows["555 1234"].attempts == 1
    received, closed = fake.messages
    assert received["To"] == "+15557654321"
    assert received["From"] == "+15550001111"
    assert "recibimos su reporte" in received["Body"]
    assert "¿No está resuelto? http" in closed["Body"]
    assert "a=not_fixed" in closed["Body"]
    first_two = [c for c, _ in calls if b"15557654321" in c.body][:2]
    assert [status for c, status in calls if b"15557654321" in c.body][:2] == [503, 201]
    assert first_two[0].headers["Idempotency-Key"] == first_two[1].headers["Idempotency-Key"]


def test_webhooks_are_signed_verifiably_and_retried_with_the_same_key(
    demo_db: Database, tmp_path: Path
) -> None:
    answers = iter([500])

    def respond(call: HttpCall) -> tuple[int, dict[str, object]]:
        return next(answers, 200), {}

    with RecordingServer(respond) as receiver:
        # The receiver listens on loopback: allowed here on purpose (test_webhook_targets.py).
        settings = notify_settings(tmp_path, 1, webhook_allow_private=True)
        admin = {"Authorization": f"Bearer {staff_token(demo_db, 'admin')}"}
        with TestClient(pooled_app(settings, db=demo_db)) as client:
            created = client.post(
                "/api/v1/webhooks",
                json={"url": receiver.url + "/geo311", "kinds": ["received", "closed"]},
                headers=admin,
            )
            assert created.status_code == 201
            secret = created.json()["secret"]
            listed = client.get("/api/v1/webhooks", headers=admin).json()
            assert "secret" not in listed[0]
            bad = client.post("/api/v1/webhooks", json={"url": "ftp://x"}, headers=admin)
            assert bad.status_code == 422
        open_incident_with_reporters(demo_db, [])
        with BackgroundWorker(settings, demo_db):
            calls = receiver.wait_for(2)
            assert wait_until(lambda: _statuses(demo_db) == ["sent"])
    (first, status_1), (second, status_2) = calls[:2]
    assert (status_1, status_2) == (500, 200)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    payload = json.loads(second.body)
    assert payload["type"] == "incident.received"
    signature = second.headers["Geo311-Signature"]
    now = time.time()
    assert signing.verify(secret, signature, second.body, now=now)
    assert not signing.verify(secret, signature, second.body + b" ", now=now)
    assert not signing.verify("whsec_other", signature, second.body, now=now)
    assert not signing.verify(secret, signature, second.body, now=now + 3600)


def test_the_dev_mail_page_lists_caught_mail_escaped(tmp_path: Path, demo_db: Database) -> None:
    port = free_port()
    settings = notify_settings(tmp_path, port, dev_mail=DevMailSettings(enabled=True, port=port))
    catcher = MailCatcher(maildir_path(settings), port=port)
    assert catcher.start()
    try:
        message = EmailMessage()
        message["From"] = "x@example.org"
        message["To"] = "<b>victim</b>@example.org"
        message["Subject"] = "<script>alert(1)</script>"
        message.set_content("<img src=x onerror=alert(2)>")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message, to_addrs=["v@example.org"])
        # A browser on this machine (who else may read it: test_dev_mail_access.py).
        with TestClient(pooled_app(settings, db=demo_db), client=("127.0.0.1", 50000)) as client:
            listing = client.get("/dev/mail")
            assert listing.status_code == 200
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text
            assert "<script>alert" not in listing.text
            key = re.search(r'href="/dev/mail/([^"]+)"', listing.text)
            assert key is not None
            detail = client.get(f"/dev/mail/{key.group(1)}")
            assert "&lt;img src=x onerror=alert(2)&gt;" in detail.text
            assert "<img src=x" not in detail.text
        off = notify_settings(tmp_path, port, dev_mail=DevMailSettings(enabled=False))
        with TestClient(pooled_app(off, db=demo_db), client=("127.0.0.1", 50000)) as client:
            assert client.get("/dev/mail").status_code == 404
    finally:
        catcher.stop()


def test_owing_the_same_notice_twice_owes_it_and_wakes_the_worker_once(demo_db: Database) -> None:
    with demo_db.session() as s:
        jid = s.execute(text("SELECT id FROM jurisdictions WHERE slug = 'demo'")).scalar_one()
        draft = outbox.NoticeDraft(
            jurisdiction_id=jid,
            idempotency_key="closed:incident-1:event-1:requester-1",
            kind="closed",
            channel="email",
            recipient="a@example.org",
        )
        first = outbox.owe(s, [draft])
        second = outbox.owe(s, [draft, draft])
        jobs = (
            s.execute(
                text("SELECT args FROM procrastinate_jobs WHERE task_name = :t"),
                {"t": outbox.DELIVER_TASK},
            )
            .scalars()
            .all()
        )
    assert len(first) == 1
    assert second == []
    assert jobs == [{"jurisdiction_id": jid, "notice_ids": first}]


def test_geo311_run_sends_the_demo_notices_to_its_mail_catcher_with_no_extra_step(
    demo_db: Database, tmp_path: Path
) -> None:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        jurisdiction="demo",
        notify=NotifySettings(
            link_secret=SecretStr(LINK_SECRET),
            dev_mail=DevMailSettings(enabled=True, port=port),
            poll_interval_s=0.1,
        ),
    )
    lon, lat = ward_point(demo_db)
    with notify_runner.embedded(settings, demo_db) as banner:
        assert any("/dev/mail" in line for line in banner.lines)
        assert (settings.notify.smtp.host, settings.notify.smtp.port) == ("127.0.0.1", port)
        with TestClient(pooled_app(settings, db=demo_db), client=("127.0.0.1", 50000)) as client:
            report = client.post(
                "/api/v1/reports",
                data={"category": "graffiti", "lat": lat, "lon": lon, "email": "eve@example.org"},
            ).json()
            assert wait_until(lambda: _statuses(demo_db) == ["sent"])
            page = client.get("/dev/mail").text
    assert f"We got your report {report['tracking_id']}" in page
    assert "eve@example.org" in page
