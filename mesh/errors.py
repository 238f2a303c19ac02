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


class KilledWorker(MeshError):
    """A task was running each time its worker process died, ``max_task_crashes``
    times (3 by default), so mesh gave up on it. The message names the task,
    the node, and what to check (os._exit, segfaults, memory)."""


class TaskFailed(MeshError):
    """Mesh could not run a task or return its result (for example the result
    was larger than a frame may be); the message says why and what to do."""


class MeshUnavailable(MeshError):
    """The client lost its node and could not reach any other known node within
    its reconnect timeout. Check that the mesh is running and reachable, or
    pass another address to ``Client``."""


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


class ActorLost(MeshError):
    """An actor call cannot be answered: the actor's host died and the actor
    is not durable (it starts again from its constructor, so calls that were
    in flight are lost), or no node knows the actor (it was closed, or every
    node that held it died). Make the actor with ``durable=True`` to keep its
    state and its calls across failures."""
