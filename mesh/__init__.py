"""mesh: a leaderless peer-to-peer compute mesh for Python on asyncio."""

from mesh.config import DEFAULT, Config
from mesh.errors import ConfigError, InsecureBindError, MeshError, WireError

__all__ = ["DEFAULT", "Config", "ConfigError", "InsecureBindError", "MeshError", "WireError"]
__version__ = "0.1.0"
