"""Notice mails as bytes, assembled directly. Pure.

Every notice has the same shape: multipart/alternative of a plain-text part and an HTML part,
the HTML wrapped in multipart/related with the after-photo inline when there is one. The
stdlib's ``EmailMessage`` builds that too, but it parses every header it is given and
re-encodes the photo for every recipient, which made it most of the worker's time; here the
photo part is encoded once per job and headers are encoded by the stdlib only when they are
not plain ASCII. ``tests/geo311/test_notify_units.py`` parses the result back with the stdlib
to keep the two in agreement.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

CRLF = b"\r\n"


@dataclass(frozen=True)
class InlineImage:
    """An image part, encoded once and reused in every mail that shows it."""

    cid: str
    part: bytes


def inline_image(data: bytes, *, cid: str, subtype: str = "jpeg", filename: str) -> InlineImage:
    """Return the MIME part (headers and base64 body) of an inline image."""
    headers = (
        f"Content-Type: image/{subtype}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-ID: <{cid}>\r\n"
        f'Content-Disposition: inline; filename="{_ascii_token(filename)}"\r\n\r\n'
    ).encode("ascii")
    return InlineImage(cid=cid, part=headers + _base64(data))


def header_value(value: str) -> str:
    """Return a header value safe on the wire: ASCII as it is, else RFC 2047 encoded words.

    Line breaks in the value are removed, so no one can inject a header.
    """
    value = " ".join(value.splitlines())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


# Parsing an address is slow next to the rest of a mail, and every mail has the same sender.
@functools.lru_cache(maxsize=64)
def address(display: str) -> str:
    """Return an address header value (``Name <addr>``) with the name encoded if needed."""
    name, addr = parseaddr(display)
    return formataddr((name, addr), charset="utf-8") if name else addr


def notice_mail(
    *,
    sender: str,
    recipient: str,
    subject: str,
    message_id: str,
    headers: Sequence[tuple[str, str]],
    text: str,
    html: str,
    image: InlineImage | None,
) -> bytes:
    """Return the whole mail, CRLF line ends, ready for SMTP DATA.

    ``recipient`` must be an ASCII address (others need SMTPUTF8 and the stdlib builder).
    """
    if not recipient.isascii():
        raise ValueError("a non-ASCII address needs SMTPUTF8; build it with EmailMessage")
    outer = f"=_geo311_a_{uuid.uuid4().hex}"
    lines = [
        f"From: {address(sender)}",
        f"To: {header_value(recipient)}",
        f"Subject: {header_value(subject)}",
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: {header_value(message_id)}",
        *(f"{name}: {header_value(value)}" for name, value in headers),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{outer}"',
    ]
    out = ["\r\n".join(lines).encode("ascii"), CRLF, CRLF]
    out += [f"--{outer}\r\n".encode(), _text_part("plain", text)]
    html_part = _text_part("html", html)
    if image is None:
        out += [f"--{outer}\r\n".encode(), html_part]
    else:
        inner = f"=_geo311_r_{uuid.uuid4().hex}"
        out += [
            f'--{outer}\r\nContent-Type: multipart/related; boundary="{inner}"\r\n\r\n'.encode(),
            f"--{inner}\r\n".encode(),
            html_part,
            f"--{inner}\r\n".encode(),
            image.part,
            f"--{inner}--\r\n".encode(),
        ]
    out.append(f"--{outer}--\r\n".encode())
    return b"".join(out)


def _text_part(subtype: str, body: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii") + _base64(body.encode("utf-8"))


def _base64(data: bytes) -> bytes:
    # 76-character lines (RFC 2045), CRLF ends; base64 never contains "=_" so boundaries
    # starting with "=_" cannot occur inside a part.
    return base64.encodebytes(data).replace(b"\n", CRLF)


def _ascii_token(value: str) -> str:
    return "".join(c for c in value if c.isascii() and c.isprintable() and c not in '"\\')
