"""The dev mail catcher's small HTML pages. Pure.

The pages behind residents' notice links are drawn in the pages' shell
(``maps.notice_pages``). Everything that comes from data is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from email.message import EmailMessage
from html import escape

from geo311.kernel.notify.mailcatcher import CaughtMail

_STYLE = """
body { font: 16px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 40rem; padding: 1rem; }
button { font: inherit; padding: .6rem 1rem; border: 0; border-radius: .3rem; color: #fff;
  margin: .3rem .3rem .3rem 0; cursor: pointer; }
.yes { background: #0a7d36; } .no { background: #b3261e; } .plain { background: #345; }
.chosen { outline: 3px solid #fc0; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #ddd;
  padding: .3rem; text-align: left; vertical-align: top; font-size: 14px; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .6rem; }
iframe { width: 100%; height: 32rem; border: 1px solid #ccc; }
"""


def page(title: str, body: str, *, lang: str = "en") -> str:
    """Return a whole HTML page; ``title`` is escaped, ``body`` is HTML already."""
    return (
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def devmail_list(mails: Sequence[CaughtMail]) -> str:
    """Return the dev mail catcher's list of caught mails, newest first."""
    rows = "".join(
        "<tr>"
        f"<td>{escape(m.received_at.isoformat(' ', 'seconds') if m.received_at else '')}</td>"
        f"<td>{escape(m.recipients)}</td>"
        f'<td><a href="/dev/mail/{escape(m.key)}">{escape(m.subject) or "(no subject)"}</a></td>'
        f"<td>{escape(str(m.message.get('Content-Language', '')))}</td>"
        f"<td>{'📷' if _images(m.message) else ''}</td>"
        "</tr>"
        for m in mails
    )
    body = (
        f"<h1>Caught mail ({len(mails)})</h1>"
        "<p>Every notice geo311 sent to the dev mail catcher. Nothing here left the machine."
        "</p><table><tr><th>date</th><th>to</th><th>subject</th><th>lang</th><th>photo</th>"
        f"</tr>{rows}</table>"
    )
    return page("geo311 — caught mail", body)


def devmail_detail(mail: CaughtMail) -> str:
    """Return one caught mail: its headers, plain text, HTML (sandboxed) and photos."""
    message = mail.message
    headers = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
        for name, value in message.items()
        if name.lower() in {"from", "to", "subject", "date", "message-id", "content-language"}
    )
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text = text_part.get_content() if isinstance(text_part, EmailMessage) else ""
    html = html_part.get_content() if isinstance(html_part, EmailMessage) else ""
    images = "".join(
        f'<img alt="attached photo" style="max-width:100%" '
        f'src="data:{escape(kind)};base64,{base64.b64encode(data).decode()}">'
        for kind, data in _images(message)
    )
    body = (
        '<p><a href="/dev/mail">← all mail</a></p>'
        f"<table>{headers}</table><h2>Plain text</h2><pre>{escape(text)}</pre>"
        # sandbox without allow-scripts: the mail's HTML cannot run anything.
        f'<h2>HTML</h2><iframe sandbox srcdoc="{escape(html)}"></iframe>'
        f"<h2>Attached photos</h2>{images or '<p>none</p>'}"
    )
    return page(f"geo311 — {mail.subject}", body)


def _images(message: EmailMessage) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for part in message.walk():
        if part.get_content_maintype() == "image":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append((part.get_content_type(), payload))
    return found
