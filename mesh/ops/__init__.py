"""Seeing and running the mesh: the dashboard, ``/metrics``, the read token,
``mesh status``, progress bars and log setup.

Importing this package is cheap (the exec service imports the task log from
it); ``prometheus_client`` and ``rich`` load only when used.

* :class:`OpsService` (``mesh.ops._service``) -- the read-only pages of a node.
* :func:`progress` -- a progress bar over futures.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OpsService", "progress"]


def __getattr__(name: str) -> Any:
    if name == "OpsService":
        from mesh.ops._service import OpsService

        return OpsService
    if name == "progress":
        from mesh.ops._progress import progress

        return progress
    raise AttributeError(f"module 'mesh.ops' has no attribute {name!r}")
