"""What to simulate: the cluster, the network, and a schedule of faults.

A :class:`Scenario` comes from a small TOML file (``sim/scenarios/*.toml``) or
from command-line flags. Its fault schedule has two parts: faults written out
with a time (``[[fault]]`` tables), and *rolling* faults (``[rolling]``) whose
times and victims are drawn from the run's seed, so one scenario file covers
many different histories. Example::

    name = "partition_heal"
    description = "A third of the cluster is cut off for 20 s, then healed."
    nodes = 50
    duration = 90.0
    mode = "liveness"          # or "safety"

    [network]                  # any field of sim.network.NetConfig
    loss = 0.0

    [config]                   # overrides of mesh.config.Config
    push_pull_interval = 15.0

    [[fault]]
    kind = "partition"         # see sim.faults.KINDS
    at = 20.0
    duration = 20.0
    fraction = 0.33

    [rolling]                  # drawn from the seed, inside the fault window
    crash = 2

Times are virtual seconds from the start of the run. Nodes start spread over
``join_spread`` seconds. Liveness mode ends every fault at ``fault_end``
(default: half the run) and keeps the rest quiet so convergence can be checked;
safety mode rolls faults until the end and only checks that nothing false is
ever claimed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mesh.config import Config
from mesh.errors import ConfigError
from sim.network import NetConfig

WORKLOAD_CONFIG: dict[str, dict[str, Any]] = {
    "tasks": {"orphan_grace": 10.0, "subscription_recheck": 10.0},
    "data": {"orphan_grace": 10.0, "subscription_recheck": 10.0, "transfer_chunk": 4096,
             "locality_bytes": 4096, "oob_threshold": 4096, "memory_limit": 1 << 20,
             "transfer_stall": 3.0},
}
"""Each workload's defaults for :class:`mesh.config.Config` (a scenario's
``[config]`` overrides them). ``tasks``: a simulated client re-attaches
within its 2 s connect timeout of losing its entry node, so a 10 s grace
keeps an orphan long enough for it; the default 60 s covers a real client's
30 s reconnect timeout, and would hold orphans past the end of a short run
(``sim.workloads.tasks.quiet_end``); a 10 s recheck likewise.
``data`` as ``tasks``, with a data plane shrunk so that a 20-200 KiB value
is 5-50 chunks (4 KiB each, which is also the locality threshold), values
from 4 KiB up, a 1 MiB memory budget (values spill)
and a 3 s stall timeout (a simulated run is short)."""

MODES = ("liveness", "safety")

KINDS = frozenset(
    {"crash", "restart", "pause", "slow", "skew", "partition", "clog", "swizzle", "flap", "network"}
)
"""Fault kinds a scenario's ``[[fault]]`` entries may name (run by sim.faults)."""

ROLLING_KINDS = (
    "crash", "restart", "pause", "slow", "skew", "partition", "one_way", "swizzle", "flap",
)
"""Counts a ``[rolling]`` table (or the matching command-line flags) may give."""


@dataclass
class FaultSpec:
    """One fault: what, when, for how long and to whom.

    ``nodes`` names victims explicitly; otherwise ``count`` (or ``fraction`` of
    the cluster) victims are drawn from the seed when the fault starts, among
    nodes that are up and not already under another fault. ``duration`` None
    means the fault never ends by itself (a crash without restart, a skew)."""

    kind: str
    at: float
    duration: float | None = None
    count: int | None = None
    fraction: float | None = None
    nodes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.kind}@{self.at:g}s"


@dataclass
class Scenario:
    """A whole simulated run, minus the seed."""

    name: str = "custom"
    description: str = ""
    nodes: int = 50
    duration: float = 60.0
    mode: str = "liveness"
    join_spread: float | None = None
    """Seconds over which nodes start (default: grows with the cluster)."""
    fault_start: float | None = None
    """Start of the rolling-fault window (default 15% of the run)."""
    fault_end: float | None = None
    """End of the fault phase (default: half the run in liveness mode, the
    whole run in safety mode). In liveness mode every fault is over by then."""
    network: NetConfig = field(default_factory=NetConfig)
    config: dict[str, Any] = field(default_factory=dict)
    faults: list[FaultSpec] = field(default_factory=list)
    rolling: dict[str, int] = field(default_factory=dict)
    loss_in_faults_only: bool = True
    workload: str = "gossip"
    warm: bool = False
    """Start every node at time 0 already joined (see ``Simulation._warm_table``)."""
    """What the nodes run: ``gossip`` (membership only) or ``tasks`` (see sim/workloads)."""
    """In liveness mode the network's loss/dup/reorder stop at ``fault_end``."""
    source: str = ""
    """Where the scenario came from (a path, or "flags")."""

    # --- derived -------------------------------------------------------------
    def spread(self) -> float:
        if self.warm:
            return 0.0
        if self.join_spread is not None:
            return self.join_spread
        return min(10.0, max(1.0, self.nodes / 100))

    def window(self) -> tuple[float, float]:
        """The (start, end) of the fault phase."""
        start = self.fault_start if self.fault_start is not None else max(
            self.spread() + 5.0, 0.15 * self.duration
        )
        if self.fault_end is not None:
            end = self.fault_end
        else:
            end = 0.5 * self.duration if self.mode == "liveness" else self.duration
        return start, max(start, end)

    def mesh_config(self) -> Config:
        """The node configuration, with this scenario's overrides. A warm cluster
        formed long ago, so its nodes make no early (fresh-node) syncs."""
        base = Config().with_(fresh_syncs=()) if self.warm else Config()
        try:
            # a simulated mesh may be larger than Config.max_members allows a real one
            bound = max(Config().max_members, 2 * self.nodes)
            return base.with_(**{"max_members": bound,
                                 **WORKLOAD_CONFIG.get(self.workload, {}), **self.config})
        except TypeError as exc:
            raise ConfigError(f"scenario {self.name}: bad [config] entry: {exc}") from None

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad setting."""
        if self.nodes < 1:
            raise ConfigError(f"scenario {self.name}: nodes must be >= 1, got {self.nodes}")
        if self.duration <= 0:
            raise ConfigError(f"scenario {self.name}: duration must be > 0")
        if self.mode not in MODES:
            raise ConfigError(f"scenario {self.name}: mode must be one of {MODES}, "
                              f"got {self.mode!r}")
        for key in self.rolling:
            if key not in ROLLING_KINDS:
                raise ConfigError(f"scenario {self.name}: unknown rolling fault {key!r}; "
                                  f"known: {', '.join(ROLLING_KINDS)}")
        from sim.workloads import WORKLOADS

        if self.workload not in WORKLOADS:
            raise ConfigError(f"scenario {self.name}: unknown workload {self.workload!r}; "
                              f"known: {', '.join(sorted(WORKLOADS))}")

        for f in self.faults:
            if f.kind not in KINDS:
                raise ConfigError(f"scenario {self.name}: unknown fault kind {f.kind!r}; "
                                  f"known: {', '.join(sorted(KINDS))}")
        for name in ("loss", "duplicate", "reorder"):
            v = getattr(self.network, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"scenario {self.name}: network.{name} must be in [0, 1]")
        self.mesh_config()


_FAULT_KEYS = {"kind", "at", "duration", "count", "fraction", "nodes"}
_NET_FIELDS = {f.name for f in fields(NetConfig)}


def load(path: str | Path) -> Scenario:
    """Read a scenario TOML file. Raises :class:`ConfigError` on bad content
    and ``OSError`` if it cannot be read."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, source=str(path))


def from_dict(data: dict[str, Any], source: str = "") -> Scenario:
    """Build a scenario from parsed TOML."""
    data = dict(data)
    net = data.pop("network", {}) or {}
    unknown = sorted(set(net) - _NET_FIELDS)
    if unknown:
        raise ConfigError(f"{source}: unknown [network] keys {unknown}; "
                          f"known: {sorted(_NET_FIELDS)}")
    faults = []
    for raw in data.pop("fault", []) or []:
        raw = dict(raw)
        if "kind" not in raw or "at" not in raw:
            raise ConfigError(f"{source}: every [[fault]] needs kind and at")
        spec = FaultSpec(
            kind=str(raw.pop("kind")),
            at=float(raw.pop("at")),
            duration=None if raw.get("duration") is None else float(raw.pop("duration")),
            count=raw.pop("count", None),
            fraction=raw.pop("fraction", None),
            nodes=list(raw.pop("nodes", [])),
        )
        raw.pop("duration", None)
        spec.params = raw
        faults.append(spec)
    known = {f.name for f in fields(Scenario)} - {"network", "faults", "source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown scenario keys {unknown}")
    sc = Scenario(network=NetConfig(**net), faults=faults, source=source, **data)
    sc.validate()
    return sc
