"""Password hashing with argon2id (argon2-cffi). Pure: no database, no web.

Only the encoded hash is ever stored; it names its own parameters and salt, so a hash made
under older parameters still verifies, and ``Passwords.verify`` says when to store a fresh one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from geo311.kernel.errors import FieldError, ValidationFailed
from geo311.kernel.settings import SigninSettings

MAX_PASSWORD_CHARS = 1024
"""Longest password accepted: long enough for any passphrase, short enough to hash cheaply."""


@dataclass(frozen=True)
class Verdict:
    """What checking a password found: whether it matched, and a new hash to store (the
    stored one was made with other parameters) or None."""

    ok: bool
    new_hash: str | None = None


class Passwords:
    """Hashes and checks passwords with the configured argon2id cost."""

    def __init__(self, settings: SigninSettings) -> None:
        self.min_chars = settings.password_min_chars
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )

    @cached_property
    def _dummy_hash(self) -> str:
        # Checked against when the name is unknown (or has no password), so that answer takes
        # as long as a wrong password for a real user and does not tell which names exist.
        return self._hasher.hash("not the password of anybody")

    def check_new(self, password: str, *, name: str) -> None:
        """Raise ValidationFailed unless ``password`` is acceptable for user ``name``."""
        problem = None
        if len(password) < self.min_chars:
            problem = f"must be at least {self.min_chars} characters long"
        elif len(password) > MAX_PASSWORD_CHARS:
            problem = f"must be at most {MAX_PASSWORD_CHARS} characters long"
        elif password.strip().casefold() == name.strip().casefold():
            problem = "must not be the user's name"
        if problem is not None:
            raise ValidationFailed(
                f"The password {problem}.", errors=[FieldError("password", problem, "weak")]
            )

    def hash(self, password: str) -> str:
        """Return the encoded argon2id hash of ``password`` (a fresh salt each time)."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> Verdict:
        """Return whether ``password`` matches the ``stored`` hash (None: no password set,
        which never matches but costs the same time as a real check)."""
        if len(password) > MAX_PASSWORD_CHARS:
            self._burn(password[:MAX_PASSWORD_CHARS])
            return Verdict(ok=False)
        if stored is None:
            self._burn(password)
            return Verdict(ok=False)
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return Verdict(ok=False)
        if self._hasher.check_needs_rehash(stored):
            return Verdict(ok=True, new_hash=self._hasher.hash(password))
        return Verdict(ok=True)

    def burn(self, password: str) -> None:
        """Spend the time of one check and find nothing (an unknown user's sign-in)."""
        self._burn(password[:MAX_PASSWORD_CHARS])

    def _burn(self, password: str) -> None:
        with contextlib.suppress(VerificationError):
            self._hasher.verify(self._dummy_hash, password)
