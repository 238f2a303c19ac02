"""The client's protocol, sans-IO: key states, credit, resubmission and the
keepalive decision of one client.

:class:`ClientProtocol` does no I/O, starts no thread and reads no clock: the
asyncio driver (:class:`mesh._client_core.ClientCore`) feeds it what the
entry node sent and ``now``, and sends what :meth:`ClientProtocol.outgoing`
returns. The driver holds its condition lock around every call, because the
user's threads (the sync bridge) read the same key states.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from mesh._client_future import CANCELLED, ERROR, FINISHED, PENDING, KeyState
from mesh.addresses import parse_address
from mesh.config import DEFAULT
from mesh.protocol import payload as P
from mesh.protocol.messages import (
    MAX_NAME,
    MAX_REPLICAS,
    MAX_WORKERS,
    ActorPublish,
    Done,
    Fetch,
    Lost,
    Members,
    Release,
    Scattered,
    Submit,
    encode,
)
from mesh.runtime import Address

__all__ = ["ClientProtocol", "check_call_options"]

_FN_CACHE = 128


def check_workers(workers: object) -> list[str]:
    """The node names of a ``workers=`` restriction, sorted (empty: none), or
    ``TypeError``/``ValueError`` naming what is wrong."""
    if workers is None:
        return []
    names = [workers] if isinstance(workers, str) else workers
    if not isinstance(names, (list, tuple, set, frozenset)):
        raise TypeError("workers must be a node name, a list of node names or None, not "
                        f"{type(workers).__name__} {workers!r:.40}")
    for n in names:
        if type(n) is not str:
            raise TypeError(f"workers must hold node names (str), not {type(n).__name__} "
                            f"{n!r:.40}")
        if not 0 < len(n) <= MAX_NAME:
            raise ValueError(f"a node name in workers must be 1 to {MAX_NAME} characters, "
                             f"not {n!r:.40}")
    out = sorted(set(names))
    if not out:
        raise ValueError("workers must name at least one node (or be None: any node)")
    if len(out) > MAX_WORKERS:
        raise ValueError(f"workers may name at most {MAX_WORKERS} nodes, not {len(out)}")
    return out


def check_call_options(*, pure: object, retries: object, key: object,
                       replicas: object = None) -> None:
    """Refuse bad ``submit``/``map`` options when called, naming the argument
    (a bad value caught only on a node would fail far from the typo)."""
    if replicas is not None:
        if type(replicas) is not int:
            raise TypeError(f"replicas must be an int or None, not {type(replicas).__name__} "
                            f"{replicas!r:.40}")
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be between 1 and {MAX_REPLICAS}, not {replicas}")
    if type(pure) is not bool:
        raise TypeError(f"pure must be True or False, not {type(pure).__name__} {pure!r:.40}")
    if type(retries) is not int:
        raise TypeError(f"retries must be an int, not {type(retries).__name__} {retries!r:.40}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries}")
    if key is not None:
        if type(key) is not str:
            raise TypeError(f"key must be a str, not {type(key).__name__} {key!r:.40}")
        if not key:
            raise ValueError("key must not be empty")


class ClientProtocol:
    """What one client knows and owes: its keys, its credit, its nodes."""

    def __init__(self, addresses: list[Address], client_id: str, max_body: int) -> None:
        self.addresses = addresses
        self.client_id = client_id
        self.max_body = max_body
        self.states: dict[str, KeyState] = {}
        self.unsent: deque[KeyState] = deque()
        self.releases: list[str] = []
        self.fetches: deque[KeyState] = deque()
        """``REMOTE`` results whose values are wanted, to ask for."""
        self.credit = 0
        self.window = 0
        self.last_rx = 0.0
        self._counter = itertools.count()
        self._fns: dict[int, tuple[Any, bytes, bytes, str]] = {}
        self.uploading: set[str] = set()
        """Scattered keys whose value is on its way (never submitted as a spec)."""
        self.scattered: list[tuple[str, str]] = []
        """``(key, error)`` of each upload the node answered, for the driver."""

    # ------------------------------------------------------------ submitting
    def build(self, func: Callable[..., Any], calls: Iterable[tuple[tuple, dict]], *,
              pure: bool, retries: int, key: str | None,
              own: Callable[[Any], bool], replicas: int | None = None,
              workers: object = None) -> list[tuple[str, list, list[Any]]]:
        """Encode calls of ``func``: ``(key, spec, dependency futures)`` each.
        ``own(future)`` says whether a future in the arguments is ours;
        ``replicas`` None leaves the count to the entry node (``--replicas``);
        ``workers`` (names) restricts where they run (None: anywhere)."""
        if not callable(func):
            raise TypeError(f"the first argument must be callable, not {type(func).__name__}")
        check_call_options(pure=pure, retries=retries, key=key, replicas=replicas)
        r = replicas or 0
        names = check_workers(workers)
        fn, fn_digest, name = self._function(func)
        items = []
        for args, kwargs in calls:
            akind, payload, dep_futs = P.dumps_args(args, kwargs)
            for f in dep_futs:
                if not own(f):
                    raise ValueError(f"future {f.key} belongs to another client")
            if len(payload) + len(fn) > self.max_body // 2:
                raise ValueError(
                    f"the arguments of {name} are {len(payload) + len(fn)} bytes pickled, more "
                    f"than half the frame limit ({self.max_body}); pass large data by "
                    "reference (a path or URL) instead")
            deps = [f.key for f in dep_futs]
            if key is not None:
                k = key
            elif pure:
                h = hashlib.blake2b(fn_digest, digest_size=16)
                h.update(bytes((akind,)))
                h.update(payload)
                k = f"{name}-{h.hexdigest()}"
            else:
                k = f"{name}-{self.client_id}-{next(self._counter)}"
            items.append((k, [fn, akind, payload, deps, retries, r, names], dep_futs))
        return items

    def _function(self, func: Callable[..., Any]) -> tuple[bytes, bytes, str]:
        cached = self._fns.get(id(func))
        if cached is not None and cached[0] is func:
            return cached[1], cached[2], cached[3]
        fn = P.dumps_function(func)
        digest = hashlib.blake2b(fn, digest_size=16).digest()
        name = getattr(func, "__name__", type(func).__name__)
        if len(self._fns) >= _FN_CACHE:
            self._fns.pop(next(iter(self._fns)))
        self._fns[id(func)] = (func, fn, digest, name)
        return fn, digest, name

    def state(self, key: str, spec: list, deps: list[KeyState]) -> tuple[KeyState, bool]:
        """The state of ``key``, and whether it is new (then it must be sent)."""
        st = self.states.get(key)
        if st is not None:
            return st, False
        st = self.states[key] = KeyState(key, spec, deps)
        return st, True

    def outgoing(self) -> list:
        """Wire messages to send now: every release, and as many queued
        submissions as the credit allows."""
        msgs: list = []
        if self.releases:
            msgs = [encode(Release(k)) for k in self.releases]
            self.releases = []
        unsent = self.unsent
        while unsent and self.credit > 0:
            st = unsent.popleft()
            if st.sent or st.refs <= 0 or st.status == CANCELLED:
                continue
            if type(st.spec) is not list:  # an actor record (mesh.actors): sent until answered
                if st.done and type(st.spec) is not ActorPublish:
                    continue
                st.sent = True
                self.credit -= 1
                msgs.append(encode(st.spec))
                continue
            st.sent = True
            self.credit -= 1
            msgs.append(encode(Submit(st.key, *st.spec)))
        fetches = self.fetches
        while fetches and self.credit > 0 and not unsent:  # after their resubmissions
            st = fetches.popleft()
            if st.fetch == 1 and st.remote and st.refs > 0:
                st.fetch = 2
                self.credit -= 1
                msgs.append(encode(Fetch(st.key)))
        return msgs

    def want(self, st: KeyState) -> bool:
        """The value of ``st`` (a ``REMOTE`` result) is wanted: ask for it
        with the next messages. True if it was not asked for yet."""
        if st.fetch or not st.remote:
            return False
        st.fetch = 1
        self.fetches.append(st)
        return True

    # ------------------------------------------------------------- receiving
    def connected(self, welcome: dict, addr: Address, now: float) -> None:
        """A node accepted us: take its credit and submit every live key again,
        in creation order (dependencies first). Holders of a result or a
        queued task re-attach to it; lost tasks run again."""
        self.learn(welcome.get("members", []), first=addr)
        self.credit = self.window = int(welcome.get("window", 1))
        self.last_rx = now
        self.unsent = deque(st for st in self.states.values()
                            if (st.status == PENDING or st.refs > 0)
                            and st.key not in self.uploading)
        for st in self.unsent:
            st.sent = False
        self.releases.clear()
        self.fetches = deque(st for st in self.states.values() if st.fetch and st.remote)
        for st in self.fetches:
            st.fetch = 1  # asked of the node we lost: ask the new one

    def learn(self, members: list[str], first: Address | None = None) -> None:
        """Member addresses, ``first`` first, then the ones we knew."""
        known = [parse_address(m) for m in members if isinstance(m, str)]
        merged = ([first] if first else []) + [a for a in known if a != first]
        merged += [a for a in self.addresses if a not in merged]
        self.addresses = merged

    def received(self, msgs: list, now: float) -> list[KeyState]:
        """Records from the entry node; returns the states they finished. A
        key resolves at most once: a second result for it is ignored. A key
        the node says is lost is queued to be submitted again."""
        self.last_rx = now
        finished = []
        credit = 0
        states = self.states
        for m in msgs:
            if type(m) is Done:
                credit += 1
                st = states.get(m.key)
                if st is None:
                    continue
                kind = m.kind
                if st.status == PENDING or (st.remote and st.fetch and kind != P.REMOTE):
                    first = st.status == PENDING
                    st.fetch = 0  # a REMOTE result's value arrived: it resolves again, whole
                    resolve(st, ERROR if P.is_failure(kind) else FINISHED, kind, m.payload)
                    finished.append(st)
                    if first and st.publish:
                        self._publish(st)
            elif type(m) is Members:
                self.learn(m.addresses, first=self.addresses[0] if self.addresses else None)
            elif type(m) is Lost:  # a dependent needs it again: we keep its spec
                st = states.get(m.key)
                if st is not None and st.sent and st.refs > 0 and st.status != CANCELLED:
                    st.sent = False
                    self.unsent.append(st)
            elif type(m) is Scattered:
                self.scattered.append((m.key, m.error))
                self.uploading.discard(m.key)
                st = states.get(m.key)
                if st is None:  # released while it was on its way
                    self.releases.append(m.key)
                elif st.status == PENDING:
                    if m.error:
                        resolve(st, ERROR, P.FAILED, m.error.encode())
                    else:
                        # kept on the mesh: result() fetches it (Fetch), as a task's
                        resolve(st, FINISHED, P.REMOTE, msgpack.packb([0]))
                    finished.append(st)
            # Pong: a keepalive answer; receiving it was the point
        self.credit += credit
        return finished

    def publish(self, st: KeyState) -> None:
        """An actor call's future is an argument of a task or of another call:
        once it resolves, its outcome goes to the node, which stores it under
        the call's key as a task's result (:mod:`mesh.actors._values`); it is
        released with the future, as a task's is."""
        if st.publish or type(st.spec) is list:
            return
        st.publish = True
        if st.done:
            self._publish(st)

    def _publish(self, st: KeyState) -> None:
        kind, payload = st.kind, st.payload
        if st.status != FINISHED and not P.is_failure(kind):
            kind = P.FAILED
        if type(payload) is not bytes:  # only task results stream (mesh.store)
            kind, payload = P.FAILED, b"the result could not be passed on"
        st.spec = ActorPublish(st.key, kind, payload)
        st.sent = False
        self.unsent.append(st)

    def keepalive(self, now: float, connected: bool,
                  timeout: float = DEFAULT.client_keepalive_timeout) -> str:
        """What the keepalive timer does now: ``"idle"`` (nothing in flight),
        ``"reconnect"`` (the node stayed silent too long: a crashed machine or
        a partition closes no connection) or ``"ping"``."""
        if not connected or self.credit >= self.window:
            self.last_rx = now
            return "idle"
        if now - self.last_rx > timeout:
            return "reconnect"
        return "ping"

    def fail_pending(self, status: str, message: bytes) -> None:
        for st in list(self.states.values()):
            if st.status == PENDING:
                resolve(st, status, P.FAILED, message)

    # ----------------------------------------------------- release / cancel
    def unref(self, st: KeyState) -> None:
        """A future of ``st`` went away; the last one releases the key."""
        st.refs -= 1
        if st.refs > 0:
            return
        if self.states.get(st.key) is st:
            del self.states[st.key]
        if st.sent and st.status != CANCELLED:
            self.releases.append(st.key)

    def cancel(self, st: KeyState) -> bool:
        """Cancel ``st`` unless it finished; True if it is cancelled now."""
        if st.status == CANCELLED:
            return True
        if st.done:
            return False
        resolve(st, CANCELLED, P.FAILED, b"")
        if self.states.get(st.key) is st:
            del self.states[st.key]
        if st.sent:
            self.releases.append(st.key)
        return True


def resolve(st: KeyState, status: str, kind: int, payload: bytes) -> None:
    st.status = status
    st.kind = kind
    st.payload = payload
    st.deps = []
