"""The pure parts of notices: mail assembly, templates, signed links, webhook signatures."""

from __future__ import annotations

import email
import email.policy
import stat
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import SecretStr

from geo311.kernel.notify import mime, signing, templates
from geo311.kernel.notify.tokens import (
    AnswerLink,
    BadLink,
    ExpiredLink,
    LinkSigner,
    PreferencesLink,
    link_secret,
)
from geo311.kernel.settings import NotifySettings, Settings
from tests.support import jpeg


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_notice_mail_parses_back_with_its_photo_and_both_bodies() -> None:
    photo = jpeg()
    raw = mime.notice_mail(
        sender="Ciudad Demo — Obras <no-reply@city.example>",
        recipient="ana@example.org",
        subject="Resuelto: Árbol o rama caída (R-1)",
        message_id="<notice.1@city.example>",
        headers=[("X-Geo311-Notice", "closed:1"), ("Content-Language", "es")],
        text="Hola — ¿quedó resuelto?\n.leading dot line\n",
        html="<p>Hola — <img src='cid:after-photo'></p>",
        image=mime.inline_image(photo, cid="after-photo", filename="after.jpg"),
    )
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    message = _parse(raw)
    assert str(message["Subject"]) == "Resuelto: Árbol o rama caída (R-1)"
    assert message["From"].addresses[0].display_name == "Ciudad Demo — Obras"
    assert str(message["X-Geo311-Notice"]) == "closed:1"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content() == "Hola — ¿quedó resuelto?\n.leading dot line\n"
    assert "cid:after-photo" in html.get_content()
    images = [p for p in message.walk() if p.get_content_type() == "image/jpeg"]
    assert len(images) == 1
    assert images[0].get_payload(decode=True) == photo
    assert str(images[0]["Content-ID"]) == "<after-photo>"


def test_a_mail_without_a_photo_is_plain_alternative() -> None:
    raw = mime.notice_mail(
        sender="no-reply@city.example",
        recipient="ana@example.org",
        subject="We got your report",
        message_id="<n@x>",
        headers=[],
        text="text",
        html="<p>html</p>",
        image=None,
    )
    message = _parse(raw)
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_a_header_value_cannot_inject_another_header() -> None:
    raw = mime.notice_mail(
        sender="no-reply@city.example",
        recipient="ana@example.org",
        subject="Fixed\r\nBcc: everyone@example.org",
        message_id="<n@x>",
        headers=[],
        text="t",
        html="h",
        image=None,
    )
    message = _parse(raw)
    assert message["Bcc"] is None
    assert "Bcc: everyone" in str(message["Subject"])


def test_templates_follow_the_requester_language_and_escape_html() -> None:
    context = {
        "category_code": "pothole",
        "category": "Pothole",
        "tracking_id": "R-1",
        "resolution_code": "temporary_fix",
        "note": "Crew: used the cold patch from truck 4",
        "city": "Demo City <script>alert(1)</script>",
    }
    links = templates.Links(fixed_url="https://x/a?t=1&a=fixed", not_fixed_url="https://x/b")
    es = templates.render_email("closed", "es-MX", context, links, photo_cid="after-photo")
    assert es.subject == "Resuelto: Bache (R-1)"
    assert "reparación provisional" in es.text
    assert "<script>" not in es.html
    assert "&lt;script&gt;" in es.html
    # The crew's note is staff words: residents read the resolution's public wording only.
    assert "truck 4" not in es.text
    assert "truck 4" not in es.html
    assert "https://x/a?t=1&amp;a=fixed" in es.html
    en = templates.render_email("closed", "fr", context, links)
    assert en.subject == "Fixed: Pothole (R-1)"
    assert "temporarily fixed" in en.text
    sms = templates.render_sms("closed", "es", context, links)
    assert sms.endswith("¿No está resuelto? https://x/b")


def test_a_scheduled_notice_names_the_planned_day_in_the_residents_language() -> None:
    context = {"category_code": "pothole", "category": "Pothole", "tracking_id": "R-1"}
    links = templates.Links()
    en = templates.render_email(
        "scheduled", "en", {**context, "scheduled_for": "2026-06-01"}, links
    )
    assert "The crew plans to come on Monday, June 1, 2026." in en.text
    assert "Monday, June 1, 2026" in en.html
    es = templates.render_email(
        "scheduled", "es", {**context, "scheduled_for": "2026-06-01"}, links
    )
    assert "La cuadrilla planea venir el lunes, 1 de junio de 2026." in es.text
    sms = templates.render_sms("scheduled", "es", {**context, "scheduled_for": "2026-06-01"}, links)
    assert sms.endswith("está programado para el lunes, 1 de junio de 2026.")
    # A scheduled notice without a plan's day (a dispatcher's move) says no day.
    plain = templates.render_email("scheduled", "en", context, links)
    assert "plans to come" not in plain.text
    assert templates.render_sms("scheduled", "en", context, links).endswith("is scheduled.")


def test_every_english_text_has_a_spanish_one() -> None:
    english = {k for k in templates.CATALOG["en"]}
    spanish = {k for k in templates.CATALOG["es"] if not k.startswith("category.")}
    assert english == spanish


def test_answer_links_are_signed_and_expire(tmp_path: Path) -> None:
    signer = LinkSigner("k1", answer_ttl_s=3600)
    link = AnswerLink(jurisdiction_id=1, incident_id=2, event_id=3, requester_id=4)
    token = signer.answer_token(link)
    assert signer.read_answer(token) == link
    with pytest.raises(BadLink):
        signer.read_answer(token[:-2] + "xx")
    with pytest.raises(BadLink):
        LinkSigner("another key", answer_ttl_s=3600).read_answer(token)
    with pytest.raises(ExpiredLink):
        LinkSigner("k1", answer_ttl_s=-1).read_answer(token)
    preferences = signer.preferences_token(PreferencesLink(1, 4))
    assert LinkSigner("k1", answer_ttl_s=-1).read_preferences(preferences) == PreferencesLink(1, 4)
    with pytest.raises(BadLink):
        signer.read_answer(preferences)  # a preferences link is not an answer link


def test_the_link_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = link_secret(settings)
    assert link_secret(settings) == first
    mode = (tmp_path / "notify-link-secret").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    configured = Settings(data_dir=tmp_path, notify=NotifySettings(link_secret=SecretStr("set")))
    assert link_secret(configured) == "set"


def test_a_webhook_signature_header_is_checked_whole() -> None:
    body = b'{"id":"k"}'
    header = signing.signature_header("whsec_1", 1_700_000_000, body)
    assert signing.verify("whsec_1", header, body, now=1_700_000_100)
    assert signing.verify("whsec_1", f"{header},v1=deadbeef", body, now=1_700_000_100)
    assert not signing.verify("whsec_1", "t=abc,v1=00", body, now=1_700_000_100)
    assert not signing.verify(
        "whsec_1", header.replace("t=1700000000", "t=1700000001"), body, now=1_700_000_100
    )
