"""``mesh status --address A [--json]``: the whole mesh in one table.

It reads the node's snapshot (``GET /v1/ops/snapshot``, the same one the
dashboard streams) with the read token when a secret is given, and prints
one row per member: status, workers, queued, running, tasks/s, completed,
stolen, values held and bytes held.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from mesh.errors import ConfigError
from mesh.ops._service import SNAPSHOT_PATH
from mesh.ops._token import read_token
from mesh.secrets import ENV_VAR, format_address, load_secrets

__all__ = ["cmd_status", "fetch_snapshot", "status_rows"]

COLUMNS = ("name", "status", "workers", "queued", "running", "tasks_per_s", "completed",
           "stolen", "values", "bytes_held", "memory_bytes", "disk_bytes")
HEADERS = ("NAME", "STATUS", "WORKERS", "QUEUED", "RUNNING", "TASKS/S", "COMPLETED",
           "STOLEN", "VALUES", "BYTES HELD", "MEMORY", "SPILLED")


def fetch_snapshot(address: tuple[str, int], secret: bytes | None, timeout: float) -> Any:
    """The node's snapshot as a dict. Raises ``OSError`` (``urllib.error.URLError``
    included) when the node cannot be read."""
    request = urllib.request.Request(f"http://{format_address(address)}{SNAPSHOT_PATH}")
    if secret:
        request.add_header("Authorization", f"Bearer {read_token(secret)}")
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def status_rows(snap: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per member (sorted by name) with the :data:`COLUMNS` keys plus
    ``address``, ``incarnation``, ``share`` and ``error`` (for an unreachable
    peer); figures are ``None`` where the node has none (dead or not asked)."""
    rows = []
    for m in snap["members"]:
        f = snap["nodes"].get(m["name"]) or {}
        error = f.get("error")
        have = bool(f) and not error
        rows.append({
            "name": m["name"], "status": m["status"], "address": m["address"],
            "incarnation": m["incarnation"], "share": m.get("share", 0.0),
            "workers": f.get("workers") if have else None,
            "queued": f.get("queued") if have else None,
            "running": f.get("running") if have else None,
            "tasks_per_s": f.get("rate") if have else None,
            "completed": f.get("completed") if have else None,
            "stolen": f.get("stolen") if have else None,
            "values": f.get("values") if have else None,
            "bytes_held": f.get("bytes") if have else None,
            "memory_bytes": f.get("memory_bytes") if have else None,
            "disk_bytes": f.get("disk_bytes") if have else None,
            "error": error,
        })
    return rows


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def cmd_status(args: argparse.Namespace) -> int:
    where = format_address(args.address)
    try:
        secret = next(iter(load_secrets(args.secret_file)), None)  # the sealing one
    except ConfigError as exc:
        print(f"mesh: error: {exc}", file=sys.stderr)
        return 2
    try:
        snap = fetch_snapshot(args.address, secret, args.timeout)
    except urllib.error.HTTPError as exc:
        hint = (f"; pass the mesh's --secret-file or set {ENV_VAR}" if exc.code == 401 else "")
        print(f"mesh: error: the node at {where} answered HTTP {exc.code}{hint}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"mesh: error: no mesh node answered at {where}: {exc}", file=sys.stderr)
        return 1
    rows = status_rows(snap)
    if args.json:
        print(json.dumps({"self": snap["self"], "members": snap["counts"], "nodes": rows},
                         sort_keys=True))
        return 0
    counts = ", ".join(f"{n} {s}" for s, n in snap["counts"].items() if n)
    print(f"mesh seen from {snap['self']}: {counts}")
    table = [list(HEADERS)]
    for r in rows:
        cells = []
        for col in COLUMNS:
            value = r[col]
            if value is None:
                cells.append("-")
            elif col in ("bytes_held", "memory_bytes", "disk_bytes"):
                cells.append(_human(value))
            elif col == "tasks_per_s":
                cells.append(f"{value:.1f}")
            else:
                cells.append(str(value))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADERS))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0

