"""Errors that mesh raises, each named by the condition it reports.

Every error says what happened and, where there is one, what to do next.
"""

from __future__ import annotations


class MeshError(Exception):
    """Base class of every error mesh raises on purpose."""


class ConfigError(MeshError, ValueError):
    """A setting or command-line value is invalid; the message names it."""


class InsecureBindError(ConfigError):
    """A non-loopback address was asked for without a cluster secret. Anyone who
    can reach the port could then run code on the node, so mesh refuses. Set
    ``MESH_SECRET`` or pass ``--secret-file``, or bind to 127.0.0.1."""


class WireError(MeshError):
    """A message from the network was rejected: malformed, oversized, of an
    unknown version or type, or not signed with our secret. ``reason`` is a
    short stable word used as the metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class OutOfStorage(MeshError):
    """A node's memory budget and spill directory together cannot hold a value.
    The message names the node, the directory and the limit; free values
    (release futures), or raise ``--memory-limit`` or the disk's room."""

    def __init__(self, node: str, directory: str, limit: int, needed: int, used: int) -> None:
        super().__init__(
            f"node {node}: out of storage: the spill directory {directory} cannot hold "
            f"{needed} more bytes ({used} of its {limit} byte limit in use); release values "
            f"you no longer need, or give the node more memory (--memory-limit) or disk")
        self.node = node
        self.directory = directory
        self.limit = limit
        self.needed = needed
        self.used = used
