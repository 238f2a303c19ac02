"""Errors a client sees for tasks that could not give a result."""

from __future__ import annotations

from mesh.errors import MeshError


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
