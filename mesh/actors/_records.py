"""The records of the actor layer: calls and their states, worker effects and
worker events. Plain data; behaviour lives in :mod:`mesh.actors._core`.

A call moves only along :data:`TRANSITIONS` on its host:

==========  ==========  =========================================================
from        event       to
==========  ==========  =========================================================
queued      start       running (handed to the actor's worker in a batch)
running     apply       applied (the worker answered; its state is being replicated)
running     crash       queued (the worker died: run again from the last state)
applied     confirm     answered (the state is on every target, or at once if volatile)
queued      lose        lost (volatile actor restarted, or the actor was closed)
running     lose        lost
applied     lose        lost
queued      hand_over   handed (placement moved the actor; the new host runs it)
==========  ==========  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

QUEUED, RUNNING, APPLIED, ANSWERED, LOST, HANDED = range(6)
STATE_NAMES = ("queued", "running", "applied", "answered", "lost", "handed")

TRANSITIONS: dict[tuple[int, str], int] = {
    (QUEUED, "start"): RUNNING,
    (RUNNING, "apply"): APPLIED,
    (RUNNING, "crash"): QUEUED,
    (APPLIED, "confirm"): ANSWERED,
    (QUEUED, "lose"): LOST,
    (RUNNING, "lose"): LOST,
    (APPLIED, "lose"): LOST,
    (QUEUED, "hand_over"): HANDED,
}
"""Every move a call may make on its host, ``(state, event) -> state``."""


class IllegalTransition(AssertionError):
    """A call was asked to make a move :data:`TRANSITIONS` does not allow: a bug."""


@dataclass(frozen=True, slots=True)
class Call:
    """One method call, as the host keeps it. ``seq`` orders the calls of one
    ``caller`` (a handle); ``key`` is the future's key; ``deps`` the keys of
    the futures among its arguments."""
    key: str
    caller: str
    seq: int
    method: str
    akind: int
    args: bytes
    deps: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class CallState:
    """Where a call stands on its host, and which entry nodes want its answer."""
    call: Call
    entries: set[str]
    state: int = QUEUED
    crashes: int = 0
    depvals: dict[str, list] | None = None
    """The values of ``call.deps`` that arrived (``{key: [kind, payload]}``)."""
    missing: set[str] | None = None
    """The keys of ``call.deps`` whose values have not arrived (None: not asked)."""
    result: tuple[int, bytes] | None = None
    """Its outcome from the worker, until applied (durable: at a quiet point)."""


def move(cs: CallState, event: str) -> None:
    """Move ``cs`` along ``event`` (see :data:`TRANSITIONS`)."""
    new = TRANSITIONS.get((cs.state, event))
    if new is None:
        raise IllegalTransition(
            f"call {cs.call.key!r}: no move {event!r} from {STATE_NAMES[cs.state]}")
    cs.state = new


@dataclass(slots=True, eq=False)
class Copy:
    """An actor's state as one node holds it (host or replica): its
    constructor, its version ``(term, n)``, the pickled state (``b""`` when
    volatile), the last sequence number applied per caller and the answers a
    caller may still ask for again."""
    actor: str
    fn: bytes
    akind: int
    args: bytes
    durable: bool
    replicas: int
    term: int = 1
    n: int = 0
    state: bytes = b""
    applied: dict[str, int] = field(default_factory=dict)
    answers: dict[str, dict[int, tuple[int, bytes]]] = field(default_factory=dict)

    @property
    def version(self) -> tuple[int, int]:
        return (self.term, self.n)

    def answer_list(self) -> list:
        return [[c, s, k, p] for c, got in sorted(self.answers.items())
                for s, (k, p) in sorted(got.items())]


# ------------------------------------------------------------ worker seam


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start generation ``gen`` of ``actor``'s worker: from ``state`` if not
    empty, else from its constructor."""
    actor: str
    gen: int
    fn: bytes
    akind: int
    args: bytes
    state: bytes
    durable: bool


@dataclass(frozen=True, slots=True)
class Run:
    """Apply ``calls`` (``[key, method, akind, args, depvals]`` each, depvals
    ``{key: [kind, payload]}`` or None) in order; a durable worker returns its
    state after them, so does ``snapshot``."""
    actor: str
    gen: int
    calls: list
    snapshot: bool


@dataclass(frozen=True, slots=True)
class Kill:
    """End ``actor``'s worker of generation ``gen``."""
    actor: str
    gen: int


WorkerEffect = Spawn | Run | Kill


@dataclass(frozen=True, slots=True)
class Started:
    """The worker of ``gen`` is up (``kind``/``payload``: the constructor's
    outcome; ``state``: its state when durable)."""
    actor: str
    gen: int
    kind: int
    payload: bytes
    state: bytes


@dataclass(frozen=True, slots=True)
class Ran:
    """Calls finished: ``results`` (``[key, kind, payload]`` each); ``reply``:
    in answer to the last :class:`Run` (else async calls that went on after
    it); ``quiet``: no call is in flight, and ``state`` (durable, else
    ``b""``) holds every call finished so far."""
    actor: str
    gen: int
    results: list
    state: bytes
    reply: bool = True
    quiet: bool = True


@dataclass(frozen=True, slots=True)
class Crashed:
    """The worker of ``gen`` died."""
    actor: str
    gen: int


WorkerEvent = Started | Ran | Crashed
