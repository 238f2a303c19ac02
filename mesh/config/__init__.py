"""Every tunable default of mesh, in one place, with the reason for each value.

The gossip defaults start from HashiCorp memberlist's ``DefaultLANConfig``
(probe every 1 s, probe timeout 500 ms, suspicion multiplier 4, 3 indirect
probes, gossip to 3 peers every 200 ms). Where mesh differs, the reason is
written beside the value.

Failure-detection time, documented (``mesh members`` users rely on it):
with N members, a crashed node is first probed within ``probe_interval`` of
any given member (on average N/N = one probe round across the cluster, since
members probe in randomised round-robin), marked ``suspect`` after
``probe_timeout`` plus the indirect-probe round, and marked ``dead`` once the
suspicion timeout runs out. The suspicion timeout starts at
``suspicion_max_timeout_mult * suspicion_timeout(N)`` and shrinks towards
``suspicion_timeout(N) = suspicion_mult * max(1, log10(N)) * probe_interval``
as independent confirmations arrive (Lifeguard). For N <= 10 that is 4 s at
least, 24 s at most; see :func:`Config.detection_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mesh.config._data import DataDefaults
from mesh.config._exec import ExecDefaults
from mesh.config._gossip import GossipDefaults
from mesh.config._wire import WireDefaults

__all__ = ["DEFAULT", "Config"]


@dataclass(frozen=True)
class Config(GossipDefaults, WireDefaults, ExecDefaults, DataDefaults):
    """Tunables for one node. Frozen: make a changed copy with :meth:`with_`.

    Its fields are declared, each with its reason, by layer: membership in
    :mod:`mesh.config._gossip`, the wire in :mod:`mesh.config._wire`,
    placement and execution in :mod:`mesh.config._exec`, the data plane,
    datasets and actors in :mod:`mesh.config._data`."""

    def with_(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)


DEFAULT = Config()
