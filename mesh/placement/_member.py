"""A member of a placement view: a node name and its weight."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Member", "member_weight"]


@dataclass(frozen=True, slots=True, order=True)
class Member:
    """One alive node as placement sees it.

    ``weight`` is the node's capacity in workers: a member of weight 8 owns
    about eight times the key space of a member of weight 1. Guarantees: the
    name is a non-empty ``str`` and the weight an ``int`` of at least 1.
    """

    name: str
    weight: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"member name must be a non-empty str, got {self.name!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise TypeError(f"member weight must be an int, got {self.weight!r}")
        if self.weight < 1:
            raise ValueError(f"member weight must be at least 1, got {self.weight}")


def member_weight(meta: object) -> int:
    """A member's placement weight from its gossip metadata: its ``workers``
    count when that is a positive int, else 1 (a node that publishes nothing,
    or nonsense, still owns a share)."""
    workers = meta.get("workers", 1) if isinstance(meta, dict) else 1
    return workers if type(workers) is int and workers > 0 else 1
