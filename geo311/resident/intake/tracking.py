"""Public tracking ids: short, unguessable, easy to read over the phone.

The one builder of them: intake, the bulk importer, the bench and the tests' support all use
it, so every report's id has the same shape and the same 50 random bits.
"""

from __future__ import annotations

import base64
import secrets

# Crockford's base32: no I, L, O or U, so a caller never confuses 1/I/L or 0/O.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# RFC 4648 base32 → Crockford's.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)


def new_tracking_id(prefix: str = "R") -> str:
    """Return a new tracking id like ``R-7K3M-9QX2-B4``: 50 random bits in 10 characters."""
    return new_tracking_ids(1, prefix)[0]


def new_tracking_ids(n: int, prefix: str = "R") -> list[str]:
    """Return ``n`` new tracking ids (see :func:`new_tracking_id`), made fast in bulk."""
    # Ten random bytes make sixteen base32 characters; the first ten carry 50 random bits.
    chars = base64.b32encode(secrets.token_bytes(10 * n)).decode().translate(_TO_CROCKFORD)
    return [
        f"{prefix}-{chars[k : k + 4]}-{chars[k + 4 : k + 8]}-{chars[k + 8 : k + 10]}"
        for k in range(0, 16 * n, 16)
    ]
