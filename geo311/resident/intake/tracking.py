"""Public tracking ids: short, unguessable, easy to read over the phone."""

from __future__ import annotations

import secrets

# Crockford's base32: no I, L, O or U, so a caller never confuses 1/I/L or 0/O.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_tracking_id(prefix: str = "R") -> str:
    """Return a new tracking id like ``R-7K3M-9QX2-B4``: 50 random bits in 10 characters."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{prefix}-{chars[:4]}-{chars[4:8]}-{chars[8:]}"
