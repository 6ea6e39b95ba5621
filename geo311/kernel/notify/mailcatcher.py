"""A mail catcher for development: a local SMTP server that keeps every mail in a Maildir.

``geo311 run`` starts one with the embedded database (``notify.dev_mail``), the notices'
SMTP settings point at it by default, and ``/dev/mail`` lists what it caught. Nothing leaves
the machine.
"""

from __future__ import annotations

import email.policy
import logging
import mailbox
import socket
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from geo311.kernel.settings import Settings

log = logging.getLogger(__name__)

MAILDIR = "devmail"


def maildir_path(settings: Settings) -> Path:
    """Return where the dev mail catcher keeps its mails."""
    return Path(settings.data_dir) / MAILDIR


class MailCatcher:
    """An SMTP server on a local port that stores every mail it accepts."""

    def __init__(self, maildir: Path, *, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.maildir = maildir
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    def start(self) -> bool:
        """Start listening; return False (and log why) when the port is taken."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((self.host, self.port)) == 0:
                log.warning(
                    "port %s:%s is in use; the dev mail catcher is not started",
                    self.host,
                    self.port,
                )
                return False
        self.maildir.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(self.maildir, create=True)  # tmp/, new/ and cur/
        controller = Controller(Mailbox(self.maildir), hostname=self.host, port=self.port)
        controller.start()
        self._controller = controller
        return True

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass(frozen=True)
class CaughtMail:
    """A mail the catcher kept, parsed."""

    key: str
    received_at: datetime | None
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def recipients(self) -> str:
        return str(self.message.get("To", ""))


def read_mails(maildir: Path, *, limit: int = 100) -> list[CaughtMail]:
    """Return the newest ``limit`` mails of a Maildir, newest first."""
    if not maildir.is_dir():
        return []
    box = mailbox.Maildir(maildir, create=False)
    mails: list[CaughtMail] = []
    for key in box.iterkeys():
        message = _parse(box.get_bytes(key))
        try:
            received = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
        except (TypeError, ValueError):
            received = None
        mails.append(CaughtMail(key=key, received_at=received, message=message))
    mails.sort(key=lambda m: (m.received_at is not None, m.received_at or 0, m.key), reverse=True)
    return mails[:limit]


def read_mail(maildir: Path, key: str) -> CaughtMail | None:
    """Return one mail by its Maildir key, or None."""
    if not maildir.is_dir():
        return None
    box = mailbox.Maildir(maildir, create=False)
    try:
        raw = box.get_bytes(key)
    except KeyError:
        return None
    return CaughtMail(key=key, received_at=None, message=_parse(raw))


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message
