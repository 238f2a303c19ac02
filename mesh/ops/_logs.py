"""Log setup of ``mesh join``: ``--log-level`` and ``--log-format text|json``.

``text`` is one readable line per record on stderr; ``json`` is one JSON
object per line (``ts``, ``level``, ``node``, ``logger``, ``message``, and
``exc`` with the traceback when there is one), for log shippers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

__all__ = ["LEVELS", "JsonFormatter", "add_log_flags", "setup_logging", "up_log_level"]

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": self.node,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(level: str, name: str, fmt: str = "text") -> None:
    """Configure the root logger for a node process called ``name``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(name))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def up_log_level(args: argparse.Namespace) -> None:
    """``mesh up``: the nodes log at ``info``, or at ``warning`` with ``--demo``
    (the demo prints its own summary; membership lines would bury it),
    unless ``--log-level`` says otherwise."""
    args.log_level = args.log_level or ("warning" if args.demo else "info")


def add_log_flags(parser: argparse.ArgumentParser, default_level: str | None = "info") -> None:
    parser.add_argument("--log-level", default=default_level, choices=LEVELS,
                        help="the least severe records logged (default: %(default)s)")
    parser.add_argument("--log-format", default="text", choices=FORMATS,
                        help="text lines, or one JSON object per line (default: text)")
