"""When an exec service publishes its queue depth and asks peers for work:
the decision its steal timer makes every ``Config.steal_interval``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesh.errors import ConfigError
from mesh.exec._effects import Effect

if TYPE_CHECKING:
    from mesh.exec._core import ExecCore
    from mesh.node import Node

__all__ = ["Stealer"]


class Stealer:
    """The queue depth last published and when this node may ask again."""

    __slots__ = ("published", "wait_until")

    def __init__(self) -> None:
        self.published = -1
        self.wait_until = 0.0

    def tick(self, node: Node, core: ExecCore, free: int, noise: Any) -> list[Effect]:
        """Publish our queue depth (a power of two: quiet gossip); idle, ask
        the most loaded peer for up to half its queue."""
        cfg = node.config
        depth = core.queue_depth()
        bucket = 0 if depth == 0 else 1 << (depth.bit_length() - 1)
        if bucket != self.published:
            self.published = bucket
            try:
                node.set_meta({"queue": bucket})
            except ConfigError as exc:  # metadata full: stealing from us stays off
                noise.warning("exec-meta", "cannot publish queue depth: %s", exc)
        core.set_depths({m.name: m.meta.get("queue", 0) for m in node.membership.alive()
                         if isinstance(m.meta, dict)})
        now = node.runtime.now()
        if depth == 0 and free > 0 and now >= self.wait_until:
            best: tuple[int, str] | None = None
            for m in node.membership.alive():  # sorted by name: ties are deterministic
                queue = m.meta.get("queue", 0) if isinstance(m.meta, dict) else 0
                if (m.name != node.name and isinstance(queue, int)
                        and queue >= cfg.steal_min_queue and (best is None or queue > best[0])):
                    best = (queue, m.name)
            if best is not None:
                self.wait_until = now + 4 * cfg.steal_interval
                return core.steal_from(best[1], max(1, min(best[0] // 2, free)))
        return []
