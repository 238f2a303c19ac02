"""mesh: a leaderless peer-to-peer compute mesh for Python on asyncio."""

from mesh.actors import ActorHandle
from mesh.client import (
    AsyncClient,
    Client,
    Future,
    KilledWorker,
    MeshUnavailable,
    TaskFailed,
    as_completed,
)
from mesh.config import DEFAULT, Config
from mesh.errors import ActorLost, ConfigError, InsecureBindError, MeshError, WireError
from mesh.integrations import register_joblib
from mesh.ops._progress import progress

register_joblib()  # the "mesh" joblib backend; imports neither joblib nor dask now

__all__ = [
    "DEFAULT",
    "ActorHandle",
    "ActorLost",
    "AsyncClient",
    "Client",
    "Config",
    "ConfigError",
    "Future",
    "InsecureBindError",
    "KilledWorker",
    "MeshError",
    "MeshUnavailable",
    "TaskFailed",
    "WireError",
    "as_completed",
    "progress",
]
__version__ = "0.1.0"
