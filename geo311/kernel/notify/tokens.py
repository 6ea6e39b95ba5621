"""Signed tokens for the links in notices: "fixed? / not fixed" and notice preferences.

A token carries ids, not secrets, and is signed with the jurisdiction-wide link key, so a
link cannot be forged or pointed at another incident. Answer links expire; preference links
never do (stopping notices must always work).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from geo311.kernel.errors import AppError
from geo311.kernel.settings import Settings

_ANSWER_SALT = "geo311.notice.answer"
_PREFERENCES_SALT = "geo311.notice.preferences"
_FOLLOW_SALT = "geo311.notice.follow"
SECRET_FILE = "notify-link-secret"  # noqa: S105 - a file name, not a secret


class BadLink(AppError):
    status = 400
    code = "bad_link"
    title = "This link is not valid"


class ExpiredLink(AppError):
    status = 410
    code = "expired_link"
    title = "This link has expired"


@dataclass(frozen=True)
class AnswerLink:
    """Who may answer "fixed?" about which closure of which incident."""

    jurisdiction_id: int
    incident_id: int
    event_id: int
    requester_id: int


@dataclass(frozen=True)
class FollowLink:
    """Which "confirm you want updates" notice a confirmation link answers (the address and
    the incident are read from that notice, so the link carries no address)."""

    jurisdiction_id: int
    notice_id: int


@dataclass(frozen=True)
class PreferencesLink:
    """Whose notice preferences a link may change."""

    jurisdiction_id: int
    requester_id: int


def link_secret(settings: Settings) -> str:
    """Return the key that signs links: the configured one, else one kept in the data dir.

    The file is created on first use (mode 0600), so every process sharing the data dir
    (server, worker) signs and checks links with the same key.
    """
    if settings.notify.link_secret is not None:
        return settings.notify.link_secret.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()  # another process won the race
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


class LinkSigner:
    """Makes and checks the tokens of notice links."""

    def __init__(self, secret: str, *, answer_ttl_s: int) -> None:
        self._answers = URLSafeTimedSerializer(secret, salt=_ANSWER_SALT)
        self._preferences = URLSafeSerializer(secret, salt=_PREFERENCES_SALT)
        self._follows = URLSafeTimedSerializer(secret, salt=_FOLLOW_SALT)
        self.answer_ttl_s = answer_ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        return cls(link_secret(settings), answer_ttl_s=settings.notify.link_ttl_days * 86400)

    def answer_token(self, link: AnswerLink) -> str:
        return str(
            self._answers.dumps(
                [link.jurisdiction_id, link.incident_id, link.event_id, link.requester_id]
            )
        )

    def read_answer(self, token: str) -> AnswerLink:
        """Return the link a token stands for; raise BadLink or ExpiredLink."""
        try:
            data: Any = self._answers.loads(token, max_age=self.answer_ttl_s)
        except SignatureExpired as exc:
            raise ExpiredLink(
                "This answer link is too old; report the problem again if it is still there."
            ) from exc
        except BadSignature as exc:
            raise BadLink("The link is damaged or was not made by this service.") from exc
        values = _ints(data, 4)
        return AnswerLink(*values)

    def preferences_token(self, link: PreferencesLink) -> str:
        return str(self._preferences.dumps([link.jurisdiction_id, link.requester_id]))

    def read_preferences(self, token: str) -> PreferencesLink:
        """Return the link a token stands for; raise BadLink."""
        try:
            data: Any = self._preferences.loads(token)
        except BadSignature as exc:
            raise BadLink("The link is damaged or was not made by this service.") from exc
        values = _ints(data, 2)
        return PreferencesLink(*values)

    def follow_token(self, link: FollowLink) -> str:
        """Return the token of a follow confirmation link (it expires like answer links)."""
        return str(self._follows.dumps([link.jurisdiction_id, link.notice_id]))

    def read_follow(self, token: str) -> FollowLink:
        """Return the follow confirmation a token stands for; raise BadLink or ExpiredLink."""
        try:
            data: Any = self._follows.loads(token, max_age=self.answer_ttl_s)
        except SignatureExpired as exc:
            raise ExpiredLink(
                "This confirmation link is too old; ask for updates again on the report's page."
            ) from exc
        except BadSignature as exc:
            raise BadLink("The link is damaged or was not made by this service.") from exc
        return FollowLink(*_ints(data, 2))


def _ints(data: Any, count: int) -> list[int]:
    if (
        not isinstance(data, list)
        or len(data) != count
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in data)
    ):
        raise BadLink("The link is damaged or was not made by this service.")
    return data
