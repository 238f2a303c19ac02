"""Which nodes hold a key: the exec layer's view of placement.

Wraps :mod:`mesh.placement` (consistent hashing over alive members, weighted
by their worker count) and memoises preference lists per view, because the
hot path asks for the same key several times (submit, store, acknowledge).
:class:`ViewBuilds` builds each new view's ring in slices, one per event-loop
turn, so no view change stalls the loop for more than a slice, and
:class:`ShareBuilds` does the same for each member's share of the key space.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Any

from mesh.config import DEFAULT
from mesh.placement import DEFAULT_PROBES, DEFAULT_VNODES, Builder, Placement
from mesh.placement import Member as PMember

_MEMO = 65536


class Ring:
    """Preference lists of length ``min(replicas, alive)`` over one view."""

    __slots__ = ("_memo", "_placement", "names", "replicas", "weights")

    def __init__(self, members: list[tuple[str, int]], replicas: int, *,
                 vnodes: int = DEFAULT_VNODES, probes: int = DEFAULT_PROBES,
                 max_points: int = DEFAULT.placement_max_points,
                 placement: Placement | None = None) -> None:
        self.weights = dict(members)
        self.names = frozenset(self.weights)
        self.replicas = max(1, min(replicas, len(members)))
        if placement is None:  # ``placement``: built from these members (ViewBuilds)
            placement = Placement([PMember(n, max(1, w)) for n, w in sorted(members)],
                                  vnodes=vnodes, probes=probes, max_points=max_points)
        self._placement = placement
        self._memo: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def pref(self, key: str, n: int = 0) -> tuple[str, ...]:
        """The nodes that hold ``key``, owner first (empty for an empty view):
        ``min(n, alive)`` of them, or ``min(replicas, alive)`` when ``n`` is 0.
        A shorter list is a prefix of a longer one (placement ranks members
        by distance), so the first nodes of every list agree."""
        if n and n != self.replicas:
            m = min(n, len(self.names))
            if m < self.replicas:
                return self.pref(key)[:m]
            if m != self.replicas:
                return tuple(self._placement.preference_list(key, m))
        got = self._memo.get(key)
        if got is None:
            if not self.names:
                return ()
            got = tuple(self._placement.preference_list(key, self.replicas))
            self._memo[key] = got
            if len(self._memo) > _MEMO:
                self._memo.popitem(last=False)
        return got

    def compare(self, new: Ring, key: str, n: int = 0
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(self.pref(key, n), new.pref(key, n))``, hashing the key once when
        both placements probe alike (a view change examines every held key)."""
        a, b = self._placement, new._placement
        if not self.names or not new.names or a.probes != b.probes:
            return self.pref(key, n), new.pref(key, n)
        probes = a.key_probes(key)
        return (a.preference_list_of_probes(probes, self._length(n)),
                b.preference_list_of_probes(probes, new._length(n)))

    def _length(self, n: int) -> int:
        return max(1, min(n, len(self.names))) if n else self.replicas

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)


class ViewBuilds:
    """Builds the ring of each new view in slices of ``step`` units of work
    (:class:`mesh.placement.Builder`), one slice per event-loop turn through
    ``call_later`` (the runtime's), and calls ``ready(members, ring)`` when
    it is done; until then the caller keeps its old ring. A view wanted while
    a build runs is built next (only the latest). A view small enough for one
    slice is built at once."""

    def __init__(self, call_later: Callable[[float, Callable[[], None]], Any],
                 ready: Callable[[list[tuple[str, int]], Ring], None], *, replicas: int,
                 vnodes: int, probes: int, max_points: int, step: int) -> None:
        self._call_later = call_later
        self._ready = ready
        self._opts = {"vnodes": vnodes, "probes": probes, "max_points": max_points}
        self.replicas = replicas
        self.step = step
        self._build: tuple[list[tuple[str, int]], Builder] | None = None
        self._next: list[tuple[str, int]] | None = None
        self._timer: Any = None
        self.slices = 0
        """Slices run, in all builds (for tests and metrics)."""

    @classmethod
    def configured(cls, call_later: Callable[[float, Callable[[], None]], Any],
                   ready: Callable[[list[tuple[str, int]], Ring], None], cfg: Any) -> ViewBuilds:
        """With the replicas and placement settings of ``cfg`` (a Config)."""
        return cls(call_later, ready, replicas=cfg.replicas, vnodes=cfg.placement_vnodes,
                   probes=cfg.placement_probes, max_points=cfg.placement_max_points,
                   step=cfg.placement_build_slice)

    def want(self, members: list[tuple[str, int]]) -> None:
        """Build the ring of ``members`` (after the one being built, if any)."""
        if self._build is not None:
            self._next = members
            return
        work = len(members) + min(self._opts["vnodes"] * sum(max(1, w) for _, w in members),
                                  self._opts["max_points"] + len(members))
        if work <= self.step:  # one slice's work: no need to spread it
            self._ready(members, Ring(members, self.replicas, **self._opts))
            return
        pairs = [(n, max(1, w)) for n, w in members]
        self._build = (members, Builder(pairs, replicas=self.replicas, step=self.step,
                                        **self._opts))
        self._timer = self._call_later(0.0, self._slice)

    def _slice(self) -> None:
        self._timer = None
        if self._build is None:
            return
        members, builder = self._build
        self.slices += 1
        if not builder.step():
            self._timer = self._call_later(0.0, self._slice)
            return
        self._build = None
        assert builder.placement is not None
        self._ready(members, Ring(members, self.replicas, placement=builder.placement))
        if self._next is not None:
            members, self._next = self._next, None
            self.want(members)

    def building(self) -> bool:
        return self._build is not None

    def cancel(self) -> None:
        self._build = self._next = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_View = tuple[Any, ...]
"""``(members, vnodes, probes, max_points, step)``: what a build depends on."""


class ShareBuilds:
    """Each live member's share of the key space (``/v1/ring``, ``mesh
    ring``, the ``mesh_ring_share`` gauge), for the latest view, built like
    :class:`ViewBuilds`: the ring, then the shares, ``step`` points per
    event-loop turn through ``call_later``, so a request after a view change
    never stalls the loop for the whole build. A view small enough for one
    slice is built at once. ``config()`` is read at each request (the
    placement settings are part of the view)."""

    def __init__(self, call_later: Callable[[float, Callable[[], None]], Any],
                 config: Callable[[], Any]) -> None:
        self._call_later = call_later
        self._config = config
        self.shares: dict[str, float] = {}
        """The shares of the last view built (``{}`` before the first)."""
        self._built: _View | None = None
        self._wanted: _View | None = None
        self._job: Generator[None, None, dict[str, float]] | None = None
        self._job_view: _View = ()
        self._seq = self._done_seq = 0  # views asked for, and the last one built
        self._waiters: list[tuple[int, asyncio.Future[dict[str, float]]]] = []
        self._timer: Any = None
        self.slices = 0
        """Slices run, in all builds (for tests)."""

    def latest(self, members: list[tuple[str, int]]) -> dict[str, float]:
        """The shares of the last view built, after asking for ``members``'
        view (built at once if it fits one slice, else in the background)."""
        self._want(self._view(members))
        return dict(self.shares)

    async def current(self, members: list[tuple[str, int]]) -> dict[str, float]:
        """The shares of ``members``' view, or of a later one asked for
        while it was built (only the latest view is built)."""
        seq = self._want(self._view(members))
        if self._done_seq >= seq:
            return dict(self.shares)
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        return dict(await fut)

    def _view(self, members: list[tuple[str, int]]) -> _View:
        cfg = self._config()
        return (tuple(sorted(members)), cfg.placement_vnodes, cfg.placement_probes,
                cfg.placement_max_points, cfg.placement_build_slice)

    def _want(self, view: _View) -> int:
        if view == self._wanted:
            return self._seq
        self._seq += 1
        self._wanted = view
        if view == self._built:  # back to the view built last: a build under way is moot
            self._stop_job()
            self._done(view, self.shares)
        elif self._job is None:
            self._start(view)
        return self._seq

    def _start(self, view: _View) -> None:
        members, vnodes, probes, max_points, step = view
        opts = {"vnodes": vnodes, "probes": probes, "max_points": max_points}
        work = len(members) + min(vnodes * sum(max(1, w) for _, w in members),
                                  max_points + len(members))
        if not members or work <= step:
            ring = (Placement([PMember(n, max(1, w)) for n, w in members], **opts)
                    if members else None)
            self._done(view, ring.shares() if ring is not None else {})
            return
        self._job, self._job_view = self._work(view), view
        self._timer = self._call_later(0.0, self._slice)

    @staticmethod
    def _work(view: _View) -> Generator[None, None, dict[str, float]]:
        members, vnodes, probes, max_points, step = view
        builder = Builder([(n, max(1, w)) for n, w in members], replicas=1, step=step,
                          vnodes=vnodes, probes=probes, max_points=max_points)
        while not builder.step():
            yield
        assert builder.placement is not None
        return (yield from builder.placement.shares_steps(step))

    def _slice(self) -> None:
        self._timer = None
        if self._job is None:
            return
        self.slices += 1
        try:
            next(self._job)
        except StopIteration as done:
            self._job = None
            self._done(self._job_view, done.value)
            if self._wanted is not None and self._wanted != self._built:
                self._start(self._wanted)
            return
        self._timer = self._call_later(0.0, self._slice)

    def _done(self, view: _View, shares: dict[str, float]) -> None:
        self._built, self.shares = view, {n: shares[n] for n in sorted(shares)}
        if view == self._wanted:
            self._done_seq = self._seq
        waiting, self._waiters = self._waiters, []
        for seq, fut in waiting:
            if seq <= self._done_seq:
                if not fut.done():
                    fut.set_result(self.shares)
            else:
                self._waiters.append((seq, fut))

    def _stop_job(self) -> None:
        self._job = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def cancel(self) -> None:
        """Stop building; whoever waits for shares is cancelled."""
        self._stop_job()
        for _, fut in self._waiters:
            fut.cancel()
        self._waiters = []
