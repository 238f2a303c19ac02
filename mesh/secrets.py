"""The cluster secret, where a node may bind, and how addresses are written.

* :func:`load_secret` -- the secret from ``--secret-file`` or ``MESH_SECRET``.
* :func:`load_secrets` -- every ``--secret-file`` given (key rotation: the
  first seals, all open), or ``MESH_SECRET``.
* :func:`check_bind` -- refuses a non-loopback bind without a secret.
* :func:`parse_address` -- ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into an
  :data:`~mesh.runtime.Address`, with errors that name the bad value.

Nothing here opens a socket; resolving host names is left to the caller.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

from mesh.errors import ConfigError, InsecureBindError
from mesh.runtime import Address

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_PORT",
    "ENV_VAR",
    "check_bind",
    "format_address",
    "is_loopback",
    "load_secret",
    "load_secrets",
    "parse_address",
]

DEFAULT_PORT = 7946
"""memberlist's port; mesh uses it for both UDP gossip and the HTTP API."""

DEFAULT_BIND: Address = ("127.0.0.1", DEFAULT_PORT)
"""Loopback by default: a node is reachable from elsewhere only on purpose."""

ENV_VAR = "MESH_SECRET"


def load_secret(secret_file: str | None, env: Mapping[str, str] | None = None) -> bytes | None:
    """The cluster secret, or ``None`` when there is none.

    ``secret_file`` wins over the ``MESH_SECRET`` environment variable. One
    trailing newline (``\\n`` or ``\\r\\n``) is stripped from the file, so
    ``echo s3cret > f`` works. An unreadable or empty file is a
    :class:`ConfigError`; an empty ``MESH_SECRET`` counts as unset.
    """
    if secret_file is not None:
        try:
            with open(secret_file, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the secret file {secret_file!r}: {exc.strerror or exc}"
            ) from None
        if data.endswith(b"\r\n"):
            data = data[:-2]
        elif data.endswith(b"\n"):
            data = data[:-1]
        if not data:
            raise ConfigError(
                f"the secret file {secret_file!r} is empty; put the cluster secret in it "
                "(the same on every node), e.g. `head -c 32 /dev/urandom | base64 > FILE`"
            )
        return data
    value = (os.environ if env is None else env).get(ENV_VAR, "")
    return value.encode() if value else None


def load_secrets(
    secret_files: Sequence[str] | str | None, env: Mapping[str, str] | None = None
) -> list[bytes]:
    """The cluster secrets, the sealing one first: one per ``--secret-file``
    (repeated while rotating: ``[new, old]``), else ``MESH_SECRET``, else none.
    Errors as in :func:`load_secret`."""
    if isinstance(secret_files, str):
        secret_files = [secret_files]
    if secret_files:
        return [s for f in secret_files if (s := load_secret(f)) is not None]
    secret = load_secret(None, env)
    return [] if secret is None else [secret]


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, secret: bytes | Sequence[bytes] | None) -> None:
    """Raise :class:`InsecureBindError` for a non-loopback ``host`` without a
    secret: anyone who can reach that port could otherwise run code here."""
    if secret or is_loopback(host):
        return
    raise InsecureBindError(
        f"refusing to listen on {host} without a cluster secret: anyone who can reach "
        f"that address could join the mesh and run code on this machine. "
        f"Give every node the same secret with --secret-file PATH or the {ENV_VAR} "
        f"environment variable, or bind to 127.0.0.1 to stay on this host."
    )


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
    """The inverse of :func:`parse_address`."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
