"""A deterministic fault-injection simulator that runs the real node code.

Public surface:

* :class:`SimLoop`, :func:`run` -- an asyncio event loop on virtual time.
* :class:`Network`, :class:`NetConfig` -- the simulated network.
* :class:`SimRuntime` -- the :class:`mesh.runtime.Runtime` of a simulated node.
"""

from sim._loop import SimDeadlock, SimLivelock, SimLoop, run
from sim.network import Host, NetConfig, Network
from sim.runtime import SimRuntime, node_rng

__all__ = [
    "Host",
    "NetConfig",
    "Network",
    "SimDeadlock",
    "SimLivelock",
    "SimLoop",
    "SimRuntime",
    "node_rng",
    "run",
]
