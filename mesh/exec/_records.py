"""The records an exec node keeps: task specs, stored results, client sessions.

Plain data with ``__slots__``; all behaviour lives in :mod:`mesh.exec._core`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Task states on a node that holds the spec.
HELD = 0
"""A backup copy: this node is in the key's preference list but not its owner."""
WAITING = 1
"""Owned here, waiting for dependency results."""
READY = 2
"""Owned here, queued for a worker."""
RUNNING = 3
"""Handed to the executor."""
STOLEN = 4
"""Owned here, but an idle node took it to run (``Task.thief``); it comes back
if the thief dies or never answers."""
KEPT = 5
"""Its result is stored on fewer nodes than hold the spec (``replicas`` below
the spec list, see :mod:`mesh.exec._lineage`): the spec stays here so the
result can be computed again if every copy of it is lost."""

STATE_NAMES = ("held", "waiting", "ready", "running", "stolen", "kept")

TRANSITIONS: dict[tuple[int, str], int] = {
    (HELD, "own"): WAITING,          # this node became the key's owner
    (HELD, "take"): READY,           # an overloaded owner gave it to this idle node
    (WAITING, "deps_ready"): READY,  # every dependency's value arrived
    (WAITING, "hand_over"): HELD,    # a view change made another node its owner
    (WAITING, "take"): READY,
    (READY, "start"): RUNNING,       # handed to the executor
    (READY, "give"): STOLEN,         # an idle node took it
    (READY, "hand_over"): HELD,
    (RUNNING, "retry"): READY,       # it raised with retries left, or crashed its worker
    (STOLEN, "reclaim"): READY,      # the thief died or stayed silent
    (STOLEN, "take"): READY,
    (HELD, "stored"): KEPT,          # its result is stored (lineage: keep the spec)
    (WAITING, "stored"): KEPT,
    (READY, "stored"): KEPT,
    (RUNNING, "stored"): KEPT,
    (STOLEN, "stored"): KEPT,
    (KEPT, "own"): WAITING,          # every copy of its result was lost: compute it again
    (KEPT, "take"): READY,
    (WAITING, "give"): STOLEN,       # its large inputs are elsewhere: run it there (locality)
    (HELD, "lend"): WAITING,         # given to run here, but an input is still to fetch
    (KEPT, "lend"): WAITING,
    (STOLEN, "lend"): WAITING,
    (STOLEN, "regain"): WAITING,     # taken back, inputs to fetch again
}
"""Every move a task may make, ``(state, event) -> state``. A task leaves the
table (it is dropped) when its result is stored or nobody wants it."""


class IllegalTransition(AssertionError):
    """A task was asked to make a move :data:`TRANSITIONS` does not allow: a
    bug in the exec core."""


def move(task: Task, event: str) -> None:
    """Move ``task`` along ``event`` (see :data:`TRANSITIONS`)."""
    new = TRANSITIONS.get((task.state, event))
    if new is None:
        raise IllegalTransition(
            f"task {task.key!r}: no move {event!r} from {STATE_NAMES[task.state]}")
    task.state = new


SPEC_FN, SPEC_AKIND, SPEC_ARGS, SPEC_DEPS, SPEC_RETRIES, SPEC_REPLICAS, SPEC_WORKERS = range(7)
"""Indexes into a spec: ``[function bytes, args kind, args payload, dependency
keys, retries, replicas, workers]``; ``replicas`` is the number of nodes that
keep the result (0 from a client: the entry node's ``--replicas``);
``workers`` the node names it may run on (empty: any,
:mod:`mesh.exec._locality`)."""


@dataclass(slots=True, eq=False)
class Task:
    key: str
    spec: list
    subs: set[str]
    """Nodes to notify of the result (entry nodes of clients, owners of
    dependent tasks)."""
    state: int = HELD
    crashes: int = 0
    tries: int = 0
    missing: set[str] = field(default_factory=set)
    depvals: dict[str, list] = field(default_factory=dict)
    """Dependency results ``{key: [kind, payload]}`` once they arrived."""
    thief: str = ""
    stale: int = 0
    """Ticks spent stolen without a result."""
    where: dict[str, tuple[int, str]] | None = None
    """Large dependencies located, not fetched: ``{key: (nbytes, holder)}``."""


@dataclass(slots=True, eq=False)
class Stored:
    kind: int
    payload: bytes
    subs: set[str]
    targets: list[str]
    """The nodes that were to hold this result when it was stored."""
    coord: str
    """The node that stored it first and collects acknowledgements."""
    confirmed: bool = False
    """True once every alive target holds it (the future may resolve)."""
    acks: set[str] = field(default_factory=set)
    notified: set[str] = field(default_factory=set)
    """Subscribers that resolve from the store message itself."""
    stale: bool = False
    """Still unconfirmed at the last tick (its stores are sent again)."""
    replicas: int = 0
    """How many nodes keep it (the spec's ``replicas``; 0: the node's default)."""
    keepers: tuple[str, ...] = ()
    """Spec holders that hold no copy (lineage): confirmed once they keep the spec."""
    spec: list | None = None
    """The spec, while a keeper has not acknowledged it (to send it again)."""


@dataclass(slots=True, eq=False)
class Session:
    """One client channel attached to this node."""

    sid: int
    window: int
    inflight: int = 0
    keys: set[str] = field(default_factory=set)
    """Keys this client holds (submitted and not yet released)."""
    lost: set[str] = field(default_factory=set)
    """Held keys this client was told are lost (:class:`Lost`): its next
    submission of one is taken again."""
