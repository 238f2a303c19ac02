"""Who may read the dashboard, its event stream and ``/metrics``.

* On a loopback bind (127.0.0.0/8, ``::1``, ``localhost``) they are open:
  only this machine can reach them.
* On any other bind they need the *read token*: HMAC-SHA256 of a purpose
  label under the cluster secret, so it opens the read-only pages and nothing
  else. Knowing it does not reveal the secret, and the secret is never sent.
  A browser passes it as ``?token=...`` (``mesh token`` prints that URL); a
  scraper as ``Authorization: Bearer ...``.

Every page it guards is read-only: nothing a token holder sends changes the
node.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys
from collections.abc import Mapping

from mesh.errors import ConfigError
from mesh.secrets import ENV_VAR, format_address, is_loopback, load_secrets
from mesh.wire import Secrets, normalize_secrets

__all__ = ["TOKEN_LABEL", "ReadAccess", "cmd_token", "read_token"]

TOKEN_LABEL = b"mesh read-only dashboard and metrics token v1"
"""The HMAC message: a purpose label, so this token can never stand in for a
key used elsewhere."""


def read_token(secret: bytes) -> str:
    """The read token for ``secret``: 32 hex digits (128 bits)."""
    return hmac.new(secret, TOKEN_LABEL, hashlib.sha256).hexdigest()[:32]


class ReadAccess:
    """Decides whether a GET may read. ``open`` on a loopback bind. While a
    secret is being rotated, the token of every secret the node holds opens."""

    __slots__ = ("_tokens", "open")

    def __init__(self, bind_host: str, secret: Secrets) -> None:
        secrets = normalize_secrets(secret)
        self.open = is_loopback(bind_host) or not secrets
        self._tokens = [read_token(s).encode() for s in secrets]

    def allows(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        if self.open:
            return True
        given = query.get("token", "")
        auth = headers.get("Authorization", "") or headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            given = value.strip()
        return any(hmac.compare_digest(given.encode(), t) for t in self._tokens)


def cmd_token(args: argparse.Namespace) -> int:
    """``mesh token --address A``: print the dashboard URL with the token."""
    try:
        secret = next(iter(load_secrets(args.secret_file)), None)  # the sealing one
    except ConfigError as exc:
        print(f"mesh: error: {exc}", file=sys.stderr)
        return 2
    base = f"http://{format_address(args.address)}/"
    if not secret:
        print(f"mesh: error: no cluster secret (give --secret-file or set {ENV_VAR}); "
              f"a node bound to loopback needs no token: {base}", file=sys.stderr)
        return 2
    token = read_token(secret)
    if args.json:
        import json

        print(json.dumps({"url": f"{base}?token={token}", "token": token,
                          "metrics": f"{base}metrics"}))
    else:
        print(f"{base}?token={token}")
    return 0

