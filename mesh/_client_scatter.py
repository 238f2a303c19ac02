"""The client's side of scattering: ``Client.scatter``, large arguments of
``submit``/``map`` scattered on their own, tasks held back until the values
they use are kept, and ``result()`` of a scattered future.

:class:`Scatterer` is a collaborator of :class:`mesh._client_core.ClientCore`
(it shares its condition lock and its loop). The user's thread serializes
and hashes a value (:func:`mesh._client_upload.prepare`) and registers its
key; the loop offers it to the entry node and sends its chunks
(:class:`mesh._client_upload.Uploads`). A key is ``finished`` once the node
says every target of the key holds the value
(:class:`~mesh.protocol.messages.Scattered`); a task that takes it as an
argument is sent only then, so its owner never asks for a value not yet
stored. ``result()`` fetches a scattered value with a task that returns it
(kept once, ``replicas=1``, released when it arrived).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mesh._client_future import ERROR, FINISHED, Future, KeyState
from mesh._client_protocol import check_call_options, resolve
from mesh._client_upload import SMALL, Upload, Uploads, lost_spec, prepare, quick_size
from mesh.config import DEFAULT
from mesh.protocol import payload as P
from mesh.protocol.messages import MAX_REPLICAS
from mesh.store import SerializationError
from mesh.store._channel import OFFER

if TYPE_CHECKING:
    from mesh._client_core import ClientCore

__all__ = ["Scatterer", "scatter_api"]


class Scatterer:
    """Values this client sends to the mesh, and the tasks that wait for them."""

    def __init__(self, core: ClientCore, threshold: int = DEFAULT.scatter_threshold) -> None:
        self.core = core
        self.threshold = threshold
        # Transfer ids from the client's id: no draw from the runtime's
        # randomness, so a simulated run's trace does not move.
        first = int.from_bytes(hashlib.blake2b(core.client_id.encode(), digest_size=4).digest(),
                               "big") << 20
        self.uploads = Uploads(first, chunk=DEFAULT.transfer_chunk,
                               window=DEFAULT.transfer_window)
        self.new: deque[Upload] = deque()
        """Registered by a user's thread, offered by the loop."""
        self.parked: dict[str, list[KeyState]] = {}
        """Tasks held back, by the scattered key they wait for."""

    # ------------------------------------------------------- user's thread
    def scatter(self, objs: Iterable[Any], *, keys: Iterable[str | None] | None = None,
                hash: bool = True, replicas: int | None = None) -> list[Future]:
        """Register each of ``objs`` for upload; a future each (pending until
        the node says the value is kept)."""
        core = self.core
        names = list(keys) if keys is not None else None
        futs = []
        for i, obj in enumerate(objs):
            key = names[i] if names is not None else None
            up = prepare(obj, key=key, hash=hash, client_id=core.client_id,
                         replicas=replicas or 0)
            limit = self.uploads.limit
            if limit is not None and up.value.nbytes > limit:
                raise ValueError(
                    f"cannot scatter {up.key!r}: it is {up.value.nbytes} bytes serialized, more "
                    f"than node {core.node!r} can hold ({limit} bytes: its --memory-limit and "
                    "the free space of its spill directory together)")
            futs.append(self._register(up))
        if self.new:
            core._wake()
        return futs

    def _register(self, up: Upload) -> Future:
        core = self.core
        with core.cond:
            st, new = core.proto.state(up.key, lost_spec(up.key, up.replicas), [])
            if new:
                if up.key in core.proto.releases:  # released, not yet told: keep holding it
                    core.proto.releases.remove(up.key)
                st.sent = True  # its spec goes out only on a reconnect or a Lost
                core.proto.uploading.add(up.key)
                up.state = st
                self.new.append(up)
            return Future(st, core)

    def large_args(self, calls: Iterable[tuple[tuple, dict]]) -> Iterator[tuple[tuple, dict]]:
        """``calls`` with each argument of at least ``threshold`` bytes
        (:func:`~mesh._client_upload.quick_size`, then its pickle) replaced
        by the future of its scattered value; one upload per object."""
        threshold = self.threshold
        seen: dict[int, tuple[Any, Any]] = {}
        small = SMALL
        for args, kwargs in calls:
            for a in args:
                if type(a) not in small:
                    break
            else:
                if not kwargs:  # plain scalars only: the common small task
                    yield args, kwargs
                    continue
            big = [i for i, a in enumerate(args) if quick_size(a) >= threshold]
            bigk = [k for k, v in kwargs.items() if quick_size(v) >= threshold] if kwargs else []
            if big or bigk:
                args = tuple(self._by_ref(a, seen) if i in big else a
                             for i, a in enumerate(args))
                kwargs = {k: self._by_ref(v, seen) if k in bigk else v
                          for k, v in kwargs.items()}
            yield args, kwargs

    def _by_ref(self, obj: Any, seen: dict[int, tuple[Any, Any]]) -> Any:
        got = seen.get(id(obj))
        if got is not None and got[0] is obj:
            return got[1]
        try:
            up = prepare(obj, key=None, hash=True, client_id=self.core.client_id, replicas=0)
        except SerializationError:
            return obj  # left inline: the task's own pickling names the problem
        if up.value.nbytes < self.threshold:
            ref: Any = obj
        else:
            ref = self._register(up)
            self.core._wake()
        seen[id(obj)] = (obj, ref)
        return ref

    def park(self, fresh: list[KeyState]) -> list[KeyState]:
        """The states of ``fresh`` that may be sent now; the others wait for
        a value on its way (called under the core's lock)."""
        uploading = self.core.proto.uploading
        ready = []
        for st in fresh:
            dep = next((f.key for f in st.deps if f.key in uploading), None)
            if dep is None:
                ready.append(st)
            else:
                self.parked.setdefault(dep, []).append(st)
        return ready

    # ---------------------------------------------------------------- loop
    def connected(self, welcome: Any) -> list:
        """A node accepted us: its limit, and every unanswered value offered again."""
        limit = welcome.get("max_value") if isinstance(welcome, dict) else None
        self.uploads.limit = limit if type(limit) is int else None
        return self.uploads.reconnected()

    async def control_frame(self, values: Any, node: str, frame: list) -> None:
        """A control frame from the node: offers of values for us (to
        ``values``, the receiving side), credits and cancels for ours."""
        for raw in frame[1:]:
            if type(raw) is list and raw and raw[0] == OFFER:
                await values.on_offer(node, raw)
            elif type(raw) is list and raw and self.uploads.control(raw):
                self.core._wake()

    async def send_chunk(self, ch: Any) -> bool:
        """Send one chunk of an upload if credit allows; True if one went."""
        chunk = self.uploads.next_chunk()
        if chunk is None:
            return False
        await ch.send_chunk(chunk.tid.to_bytes(8, "big"), chunk.seq, chunk.parts)
        return True

    def offers(self) -> list:
        """Offers of the values registered since the last call."""
        out = []
        while self.new:
            out.append(self.uploads.add(self.new.popleft()))
        return out

    def answered(self) -> list[KeyState]:
        """The node answered uploads (under the core's lock): send the tasks
        that waited for them; the states failed with them are returned."""
        proto = self.core.proto
        failed: list[KeyState] = []
        ready: list[KeyState] = []
        answers, proto.scattered = proto.scattered, []
        for key, error in answers:
            self.uploads.done(key)
            for st in self.parked.pop(key, ()):
                if error:
                    if not st.done:
                        resolve(st, ERROR, P.FAILED,
                                f"an argument could not be scattered: {error}".encode())
                        failed.append(st)
                else:
                    ready.extend(self.park([st]))
        if ready:
            self.core.inbox.extend(ready)
            self.core._wake()
        return failed

    async def wait(self, futs: list[Future]) -> None:
        """Wait until every scattered future is kept; raise the first refusal."""
        for f in futs:
            await self.core.waits.wait_done(f._state)
        for f in futs:
            if f._state.status != FINISHED:
                raise f._state.error()  # type: ignore[misc]


def scatter_api(client: Any, data: Any, replicas: int | None, hash: bool,
                broadcast: bool, timeout: float | None) -> Any:
    """``Client.scatter`` and ``AsyncClient.scatter`` (a coroutine then)."""
    core = client._core
    check_call_options(pure=True, retries=0, key=None, replicas=replicas)
    if type(hash) is not bool or type(broadcast) is not bool:
        raise TypeError("hash and broadcast must be True or False")
    if broadcast and replicas is None:
        replicas = max(1, min(len(core.addresses), MAX_REPLICAS))
    keys: list[str | None] | None = None
    if isinstance(data, dict):
        for k in data:
            if type(k) is not str or not k:
                raise TypeError(f"the keys of a scattered dict name its futures: they must be "
                                f"non-empty str, not {type(k).__name__} {k!r:.40}")
        keys = list(data)
        objs = list(data.values())

        def shape(futs: list[Future]) -> Any:
            return dict(zip(keys, futs, strict=True))
    elif isinstance(data, (list, tuple)):
        objs = list(data)

        def shape(futs: list[Future]) -> Any:
            return type(data)(futs) if type(data) in (list, tuple) else futs
    else:
        objs = [data]

        def shape(futs: list[Future]) -> Any:
            return futs[0]

    def start() -> list[Future]:
        return core.scatter.scatter(objs, keys=keys, hash=hash, replicas=replicas)

    if client._async:
        async def run() -> Any:
            futs = await asyncio.to_thread(start)  # serializing and hashing: off the loop
            await asyncio.wait_for(core.scatter.wait(futs), timeout)
            return shape(futs)
        return run()
    futs = start()
    core.waits.wait_states([f._state for f in futs], timeout)
    for f in futs:
        if f._state.status != FINISHED:
            raise f._state.error()  # type: ignore[misc]
    return shape(futs)
