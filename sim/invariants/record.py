"""The verdict every invariant gives, and the codes of a belief about a member."""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN, ALIVE, SUSPECT, DEAD, LEFT = 0, 1, 2, 3, 4
_CODE = {0: ALIVE, 1: SUSPECT, 2: DEAD, 3: LEFT}  # Status int -> view code


@dataclass
class Invariant:
    name: str
    status: str  # "pass" | "fail" | "inconclusive"
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}
