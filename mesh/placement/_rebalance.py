"""Rebalancing: what a view change moves, from whom, to whom.

The execution layer calls :func:`diff` with the keys it holds (queued tasks,
stored results) when the view changes, and copies or hands off each key from
a :attr:`Move.sources` node to every :attr:`Move.targets` node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mesh.placement._ring import Placement

__all__ = ["Move", "diff", "repair_targets"]


@dataclass(frozen=True, slots=True)
class Move:
    """How one key's preference list changed between two views.

    Guarantees (when built by :func:`diff`): ``old_prefs != new_prefs``;
    ``sources`` are the old holders still alive in the new view, in old
    preference order (so the old owner comes first when it survived);
    ``targets`` are the new holders that held no copy, in new preference order.
    Every member of ``new_prefs`` is either an old holder or a target.
    """

    key: str | bytes
    old_prefs: tuple[str, ...]
    new_prefs: tuple[str, ...]
    sources: tuple[str, ...]
    targets: tuple[str, ...]

    @property
    def old_owner(self) -> str | None:
        """The owner in the old view (None if the old view was empty)."""
        return self.old_prefs[0] if self.old_prefs else None

    @property
    def new_owner(self) -> str | None:
        """The owner in the new view (None if the new view is empty)."""
        return self.new_prefs[0] if self.new_prefs else None

    @property
    def owner_changed(self) -> bool:
        """Whether queued work for the key must be handed to a new owner."""
        return self.old_owner != self.new_owner

    @property
    def released(self) -> tuple[str, ...]:
        """Surviving old holders no longer in the preference list: they may
        drop their copy once every target has one."""
        return tuple(n for n in self.sources if n not in self.new_prefs)

    @property
    def lost(self) -> bool:
        """True when the key had holders and none of them survived: no copy is
        left to repair from."""
        return bool(self.old_prefs) and not self.sources


def _move(
    key: str | bytes, old_prefs: tuple[str, ...], new_prefs: tuple[str, ...], alive: Placement
) -> Move:
    return Move(
        key=key,
        old_prefs=old_prefs,
        new_prefs=new_prefs,
        sources=tuple(n for n in old_prefs if n in alive),
        targets=tuple(n for n in new_prefs if n not in old_prefs),
    )


def diff(old: Placement, new: Placement, keys: Iterable[str | bytes], r: int) -> list[Move]:
    """One :class:`Move` for each of ``keys`` (in the order given) whose
    preference list of length ``r`` differs between ``old`` and ``new``.

    Keys whose list is unchanged are left out, so an empty result means no
    data or work has to move. Each key is hashed once when both views use the
    same number of probes.
    """
    if r < 1:
        raise ValueError(f"r must be at least 1, got {r}")
    if old == new:
        return []
    moves: list[Move] = []
    if old.probes == new.probes:
        for key in keys:
            probes = old.key_probes(key)
            a = old.preference_list_of_probes(probes, r)
            b = new.preference_list_of_probes(probes, r)
            if a != b:
                moves.append(_move(key, a, b, new))
    else:
        for key in keys:
            a = old.preference_list(key, r)
            b = new.preference_list(key, r)
            if a != b:
                moves.append(_move(key, a, b, new))
    return moves


def repair_targets(key: str | bytes, old: Placement, new: Placement, r: int) -> tuple[str, ...]:
    """The members of ``key``'s new preference list (length ``r``) that did
    not hold it under ``old`` and so must receive a copy from a surviving
    holder to bring the key back to ``min(r, len(new))`` replicas.

    Empty when nothing has to be copied.
    """
    old_prefs = old.preference_list(key, r)
    return tuple(n for n in new.preference_list(key, r) if n not in old_prefs)
