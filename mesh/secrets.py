"""The cluster secret, where a node may bind, and how addresses are written.

* :func:`load_secret` -- the secret from ``--secret-file`` or ``MESH_SECRET``.
* :func:`load_secrets` -- every ``--secret-file`` given (key rotation: the
  first seals, all open), or ``MESH_SECRET``.
* :func:`check_bind` -- refuses a non-loopback bind without a secret.
* :func:`parse_address`, :func:`format_address` -- re-exported from
  :mod:`mesh.addresses`, the one place that reads and writes ``HOST:PORT``.

Nothing here opens a socket; resolving host names is left to the caller.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

from mesh.addresses import DEFAULT_BIND, DEFAULT_PORT, format_address, parse_address
from mesh.errors import ConfigError, InsecureBindError

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
