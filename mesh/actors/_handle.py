"""Actor handles: what a client holds for an actor.

``handle.method(*args)`` returns a mesh :class:`~mesh.Future`. Every handle
is its own caller: it numbers its calls 1, 2, ... and the actor's host
applies them in that order, each once, however often a reconnecting client
sends one again. A handle pickles: in a task or another actor (any process
without a client of its own) it connects a process-wide client to the
addresses it was made with, and calls the same actor as a new caller.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesh.protocol import payload as P
from mesh.protocol.messages import ActorCall, ActorClose, ActorFind, ActorOpen, KeyFind

if TYPE_CHECKING:
    from mesh._client_core import ClientCore
    from mesh._client_future import Future

__all__ = ["ActorHandle", "check_actor_options", "close_msg", "find_msg", "open_msg"]

_clients: dict[tuple[str, ...], Any] = {}
_clients_lock = threading.Lock()
CLIENT_FACTORY: Callable[[list[str]], Any] | None = None
"""Makes the process-wide client of unpickled handles (set by :mod:`mesh.client`)."""


def set_client_factory(factory: Callable[[list[str]], Any]) -> None:
    global CLIENT_FACTORY
    CLIENT_FACTORY = factory


def actor_key(name: str) -> str:
    return f"actor-{name}"


def check_actor_options(cls: object, name: object, durable: object, replicas: object) -> None:
    if not callable(cls):
        raise TypeError(f"an actor is made from a class, not {type(cls).__name__}")
    if name is not None and (type(name) is not str or not name):
        raise TypeError(f"name must be a non-empty str or None, not {name!r:.40}")
    if type(durable) is not bool:
        raise TypeError(f"durable must be True or False, not {type(durable).__name__}")
    if replicas is not None and (type(replicas) is not int or replicas < 1):
        raise ValueError(f"replicas must be an int of 1 or more, or None, not {replicas!r:.40}")


def open_msg(core: ClientCore, cls: type, args: tuple, kwargs: dict, name: str | None,
             durable: bool, replicas: int | None) -> tuple[str, ActorOpen]:
    """The record that makes the actor, and the actor's key."""
    check_actor_options(cls, name, durable, replicas)
    if name is None:
        n = next(core.proto._counter)
        name = f"{getattr(cls, '__name__', 'actor')}-{core.client_id}-{n}"
    actor = actor_key(name)
    akind, payload, deps = P.dumps_args(args, kwargs)
    if deps:
        raise TypeError("an actor's constructor cannot take futures; pass their results")
    key = f"{actor}/open/{core.client_id}/{next(core.proto._counter)}"
    return actor, ActorOpen(key, actor, P.dumps_function(cls), akind, payload, durable,
                            replicas or 0)


def find_msg(core: ClientCore, actor: str) -> ActorFind:
    return ActorFind(f"{actor}/find/{core.client_id}/{next(core.proto._counter)}", actor)


def close_msg(core: ClientCore, actor: str) -> ActorClose:
    return ActorClose(f"{actor}/close/{core.client_id}/{next(core.proto._counter)}", actor)


def send(core: ClientCore, msg: Any) -> Future:
    """Queue an actor record; its future resolves with the node's ``Done``."""
    return core.add([(msg.key, msg, [])])[0]


class ActorHandle:
    """A reference to an actor on the mesh: attribute access gives its
    methods; each call returns a :class:`~mesh.Future`."""

    __slots__ = ("_actor", "_async", "_caller", "_core", "_done", "_durable", "_heap", "_lock",
                 "_open", "_seq", "_via")

    def __init__(self, core: ClientCore, actor: str, durable: bool,
                 is_async: bool = False) -> None:
        self._core = core
        self._async = is_async
        self._actor = actor
        self._durable = durable
        self._caller = f"{core.client_id}.{next(core.proto._counter)}"
        self._seq = 0
        self._heap: list[int] = []
        self._done: set[int] = set()
        self._lock = threading.Lock()
        self._open = 0
        """Calls made and not resolved."""
        self._via: Any = None
        """The route of the last call (:mod:`mesh.actors._direct`; None: the client's node)."""

    @property
    def key(self) -> str:
        """The actor's key (placement decides its host from it)."""
        return self._actor

    @property
    def durable(self) -> bool:
        return self._durable

    def __repr__(self) -> str:
        kind = "durable" if self._durable else "volatile"
        return f"<ActorHandle {self._actor} ({kind})>"

    def __getattr__(self, method: str) -> Callable[..., Future]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Future:
            return self._call(method, args, kwargs)

        call.__name__ = method
        return call

    def _call(self, method: str, args: tuple, kwargs: dict) -> Future:
        # large arguments travel as scattered values (futures), as a task's do
        args, kwargs = next(self._core.scatter.large_args([(args, kwargs)]))
        akind, payload, deps = P.dumps_args(args, kwargs)
        for f in deps:
            if f._core is not self._core:
                raise ValueError(f"{method}(): future {f.key} belongs to another client; "
                                 "pass its result()")
        if len(payload) > self._core.max_body // 2:
            raise ValueError(
                f"{method}(): the arguments are {len(payload)} bytes pickled, more than half "
                f"the frame limit ({self._core.max_body}); pass large data as a future "
                "(client.submit, client.scatter) or as separate arguments instead")
        with self._lock:
            self._seq += 1
            seq = self._seq
            heap = self._heap
            while heap and heap[0] in self._done:
                self._done.discard(heapq.heappop(heap))
            low = heap[0] if heap else seq
            heapq.heappush(heap, seq)
            busy = self._open > 0
            self._open += 1
        key = f"{self._actor}/{self._caller}/{seq}"
        msg = ActorCall(key, self._actor, self._caller, seq, low, method, akind, payload,
                        self._durable, [f.key for f in deps])
        # straight to the host when known; deps: held while the call waits
        fut = self._core.direct.add(self, key, msg, deps, busy)
        fut.add_done_callback(lambda _f: self._resolved(seq))
        return fut

    def _resolved(self, seq: int) -> None:
        with self._lock:
            self._done.add(seq)
            self._open -= 1

    def close(self) -> Any:
        """End the actor and drop its state (calls still queued fail with
        ``ActorLost``). Returns None; on an ``AsyncClient``, an awaitable."""
        fut = send(self._core, close_msg(self._core, self._actor))
        self._core.direct.forget(self._actor)
        return fut if self._async else fut.result()

    def __reduce__(self) -> Any:
        from mesh.addresses import format_address

        addrs = [format_address(a) for a in self._core.addresses]
        return (_rebuild, (self._actor, self._durable, addrs, self._core.direct.hint(self._actor)))


def find_actor(core: ClientCore, name: str) -> tuple[str, Future]:
    """The actor named ``name`` and the future of where it is."""
    if type(name) is not str or not name:
        raise TypeError(f"name must be a non-empty str, not {name!r:.40}")
    actor = actor_key(name)
    return actor, send(core, find_msg(core, actor))


def where(core: ClientCore, items: Any) -> list[tuple[str, Future]]:
    """``(key, future of its find)`` for each handle or future of ``items``:
    an actor's host and replicas, or the nodes holding a future's result."""
    if isinstance(items, ActorHandle) or getattr(items, "_mesh_future_", False):
        items = [items]
    out = []
    for h in items:
        if isinstance(h, ActorHandle):
            out.append((h._actor, send(core, find_msg(core, h._actor))))
        elif getattr(h, "_mesh_future_", False):
            if h._core is not core:
                raise ValueError(f"future {h.key} belongs to another client")
            msg = KeyFind(f"{h.key}/who/{core.client_id}/{next(core.proto._counter)}", h.key)
            out.append((h.key, send(core, msg)))
        else:
            raise TypeError(f"who_has takes futures and actor handles, not "
                            f"{type(h).__name__}")
    return out


def _rebuild(actor: str, durable: bool, addresses: list[str],
             host: tuple[str, str] | None = None) -> ActorHandle:
    """A handle unpickled in another process: call through its own client
    (straight to ``host``, ``(name, address)``, while it hosts the actor)."""
    key = tuple(addresses)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if CLIENT_FACTORY is None:
                raise RuntimeError("import mesh before unpickling an actor handle")
            client = _clients[key] = CLIENT_FACTORY(addresses)
    if host is not None and client._core.direct.hint(actor) is None:
        client._core.direct.learn(actor, {"host": host[0], "address": host[1]})
    return ActorHandle(client._core, actor, durable)


# ------------------------------------------------------ the clients' methods


def make(client: Any, cls: type, args: tuple, kwargs: dict, name: str | None, durable: bool,
         replicas: int | None) -> Any:
    """``client.actor(...)``: the handle once the actor exists."""
    core = client._core
    actor, msg = open_msg(core, cls, args, kwargs, name, durable, replicas)
    handle = ActorHandle(core, actor, durable, client._async)

    def made(where: Any) -> ActorHandle:
        core.direct.learn(actor, where)  # its host: calls go there straight
        return handle

    return _then(client, send(core, msg), made)


def get(client: Any, name: str) -> Any:
    """``client.get_actor(name)``."""
    core = client._core
    actor, fut = find_actor(core, name)

    def found(info: dict) -> ActorHandle:
        core.direct.learn(actor, info)
        return ActorHandle(core, actor, bool(info["durable"]), client._async)

    return _then(client, fut, found)


def who_has(client: Any, handles: Any) -> Any:
    """``client.who_has(futures_or_handles)``: ``{key: [node, ...]}``; for an
    actor ``[host, replica, ...]``, for a future the nodes holding its result
    (empty while it is pending, and for an actor call's future until it is
    an argument of a task or call, :mod:`mesh.actors._values`)."""
    found = where(client._core, handles)
    if client._async:
        async def gather() -> dict[str, list[str]]:
            return {actor: (await fut)["nodes"] for actor, fut in found}
        return gather()
    return {actor: fut.result()["nodes"] for actor, fut in found}


def _then(client: Any, fut: Future, then: Callable[[Any], Any]) -> Any:
    if client._async:
        async def wait() -> Any:
            return then(await fut)
        return wait()
    return then(fut.result())
