"""What every ``mesh`` command shares: argument types, ``--set`` overrides,
logging, errors and tables."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from mesh.addresses import parse_address
from mesh.config import DEFAULT, Config
from mesh.errors import ConfigError
from mesh.runtime import Address
from mesh.secrets import ENV_VAR

SECRET_HELP = f"file holding the cluster secret (default: ${ENV_VAR})"
SECRETS_HELP = SECRET_HELP + "; repeat to rotate: the first seals, every one opens"


def fail(code: int, message: str) -> int:
    """Print ``mesh: error: MESSAGE`` to stderr and return ``code``."""
    print(f"mesh: error: {message}", file=sys.stderr)
    return code


def address(what: str) -> Any:
    """An argparse type reading ``HOST:PORT`` (errors name ``what``)."""
    def parse(text: str) -> Address:
        try:
            return parse_address(text, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def workers(text: str) -> int:
    """A worker count within what a node may announce (``Config.max_workers``)."""
    value = positive_int(text)
    if value > DEFAULT.max_workers:
        raise argparse.ArgumentTypeError(
            f"{value} workers is more than the {DEFAULT.max_workers} a node may announce "
            "(Config.max_workers)")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1-65535")
    return value


def config_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` settings of :class:`Config` (the hidden ``--set``
    flag); each value gets the type of the field's default. Raises
    :class:`ConfigError` naming a bad key or value."""
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "extra"}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise ConfigError(
                f"invalid --set {pair!r}: expected KEY=VALUE with KEY one of "
                + ", ".join(sorted(fields))
            )
        kind = type(getattr(DEFAULT, key))
        try:
            out[key] = kind(text)
        except ValueError:
            raise ConfigError(
                f"invalid --set {pair!r}: {text!r} is not a {kind.__name__}"
            ) from None
    return out


def add_set_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=argparse.SUPPRESS)  # Config overrides, for tests and experiments


def config_from(args: argparse.Namespace) -> Config:
    """The node's :class:`Config`: defaults, then ``--set``, then ``--replicas``."""
    config = DEFAULT.with_(**config_overrides(args.set))
    if args.replicas is not None:
        config = config.with_(replicas=args.replicas)
    return config


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
