"""Where a webhook may point: public addresses only, unless the operator allows private ones.

A webhook URL makes the server send requests for whoever registered it, so one that reaches
loopback, the link-local metadata service (169.254.169.254) or the private network would let
an admin's mistake, or a stolen admin token, probe what sits behind the firewall. The host is
resolved and every address it resolves to is checked, when the webhook is registered and
again right before each send (a name can be re-pointed after it was checked).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class PrivateTarget(ValueError):
    """The URL's host is, or resolves to, an address that is not public."""


class Unresolvable(ValueError):
    """The URL's host does not resolve (now)."""


def check_public(url: str) -> None:
    """Return if every address ``url``'s host resolves to is public; raise PrivateTarget or
    Unresolvable."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise Unresolvable("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise PrivateTarget(
                f"{host} is {address}, a private, loopback or link-local address; "
                "set GEO311_NOTIFY__WEBHOOK_ALLOW_PRIVATE=true to allow such targets"
            )
