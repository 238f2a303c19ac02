"""What the exec core asks its driver to do: its only outputs.

Every input to :class:`mesh.exec._core.ExecCore` returns a list of these, in
the order they must happen. Messages are grouped per destination (one effect
per peer or client per call), so a burst of tasks costs one frame per
destination. Jobs are pulled with :meth:`ExecCore.take_jobs` when the driver
has free workers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ToPeer:
    """Send ``msgs`` (records of :mod:`mesh.protocol.messages`) to node ``dest``.

    ``urgent`` False: nothing waits on these messages (a release's fan-out),
    so the driver may hold them until the next frame to ``dest`` or
    ``Config.lazy_flush``, keeping their order with what follows."""
    dest: str
    msgs: list
    urgent: bool = True


@dataclass(frozen=True, slots=True)
class ToClient:
    """Send ``msgs`` to the client of session ``sid``."""
    sid: int
    msgs: list


Effect = ToPeer | ToClient
