"""Each member's exact share of the key space, for ``mesh ring`` and
:meth:`mesh.placement.Placement.shares`."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")

_POSITIONS = float(1 << 48)


def run_steps(steps: Generator[None, None, T]) -> T:
    """Run a generator of work slices to its end, at once; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def owned_shares_steps(positions: list[int], owners: list[int], members: int, probes: int,
                       step: int) -> Generator[None, None, list[float]]:
    """The fraction of the key space each member owns (is first in the
    preference list for), by member index; sums to 1. ``positions`` are the
    ring's sorted 48-bit points and ``owners`` their members' indexes. Yields
    after every ``step`` points, so a caller can spread the work over loop
    turns (:func:`run_steps` runs it at once).

    Exact for ideal hashes: with ``k`` probes, a point whose preceding gap is
    ``g`` owns ``integral_0^g k (1 - F(t))**(k-1) dt``, where ``F(t)`` is the
    fraction of the ring within clockwise distance ``t`` of a point.
    """
    k = probes
    prev = [positions[-1] - (1 << 48), *positions[:-1]]
    yield
    gaps = [(b - a) / _POSITIONS for a, b in zip(prev, positions, strict=True)]
    yield
    order = sorted(range(len(gaps)), key=gaps.__getitem__)
    owned = [0.0] * len(gaps)
    acc = 0.0  # integral so far
    below = 0.0  # total length of the gaps already passed
    left = len(gaps)  # gaps not yet passed
    t0 = 0.0
    for a in range(0, len(order), step):
        yield
        for j in order[a : a + step]:
            g = gaps[j]
            if g > t0:
                acc += ((1.0 - below - left * t0) ** k - (1.0 - below - left * g) ** k) / left
                t0 = g
            owned[j] = acc
            below += g
            left -= 1
    yield
    per = [0.0] * members
    for i, s in zip(owners, owned, strict=True):
        per[i] += s
    total = sum(per)
    return [s / total for s in per]
