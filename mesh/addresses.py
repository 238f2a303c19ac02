"""``HOST:PORT`` text, parsed and formatted in one place.

Every address mesh prints, logs, sends to a client or reads from a user goes
through :func:`format_address` and :func:`parse_address`, so an IPv6 host is
always written in brackets (``[::1]:7946``) and read back the same way.
"""

from __future__ import annotations

import ipaddress

from mesh.errors import ConfigError
from mesh.runtime import Address

__all__ = ["DEFAULT_BIND", "DEFAULT_PORT", "format_address", "parse_address"]

DEFAULT_PORT = 7946
"""memberlist's port; mesh uses it for both UDP gossip and the HTTP API."""

DEFAULT_BIND: Address = ("127.0.0.1", DEFAULT_PORT)
"""Loopback by default: a node is reachable from elsewhere only on purpose."""


def parse_address(text: str, what: str = "address") -> Address:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``. ``localhost`` becomes
    ``127.0.0.1`` so the address can be used for datagrams as is. Raises
    :class:`ConfigError` naming ``what`` and the value."""
    bad = f"invalid {what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}"
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(bad)
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{bad} ({host!r} is not an IPv6 address)") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ConfigError(bad)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{bad} (port {port_text!r} is not a number)") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{bad} (port {port} is outside 1-65535)")
    if any(c.isspace() for c in host):
        raise ConfigError(bad)
    if host == "localhost":
        host = "127.0.0.1"
    return (host, port)


def format_address(addr: Address) -> str:
    """``HOST:PORT``, with an IPv6 host in brackets: the inverse of
    :func:`parse_address`."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
