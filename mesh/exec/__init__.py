"""Running Python tasks on the mesh: the node side.

* :class:`ExecService` -- the node service under ``/v1/exec/`` (client and
  peer channels, task ownership, replication, failover).
* :class:`Executor` -- the seam where tasks run; :class:`ProcessExecutor` is
  the real one (worker subprocesses).
* :class:`ExecCore` -- the sans-IO state machine the service drives.

The client is :mod:`mesh.client`.
"""

from mesh.errors import KilledWorker, MeshUnavailable, TaskFailed
from mesh.exec._core import ExecCore, ProtocolViolation
from mesh.exec._executor import Executor, Job, Outcome
from mesh.exec._pool import ProcessExecutor
from mesh.exec._service import CLIENT_PATH, PEER_PATH, STATS_PATH, ExecService

__all__ = [
    "CLIENT_PATH",
    "PEER_PATH",
    "STATS_PATH",
    "ExecCore",
    "ExecService",
    "Executor",
    "Job",
    "KilledWorker",
    "MeshUnavailable",
    "Outcome",
    "ProcessExecutor",
    "ProtocolViolation",
    "TaskFailed",
]
