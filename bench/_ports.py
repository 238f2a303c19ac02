"""Free ports on 127.0.0.1 for the processes that benchmarks and tests start.

A mesh node listens on one port for both UDP gossip and HTTP, so a port is
free only if it binds for both.
"""

from __future__ import annotations

import random
import socket

__all__ = ["bindable", "free_ports"]

_rng = random.SystemRandom()  # not the simulator's seeded randomness: real ports


def bindable(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 binds for both TCP and UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_ports(n: int, consecutive: bool = False) -> list[int]:
    """``n`` ports free for both TCP and UDP on 127.0.0.1, picked at random
    below the kernel's ephemeral range so outgoing connections do not take
    them. With ``consecutive``, ``n`` adjacent ports."""
    for _ in range(1000):
        if consecutive:
            start = _rng.randrange(20000, 32000 - n)
            ports = list(range(start, start + n))
        else:
            ports = sorted(set(_rng.randrange(20000, 32000) for _ in range(n)))
            if len(ports) != n:
                continue
        if all(bindable(p) for p in ports):
            return ports
    raise RuntimeError(f"could not find {n} free ports on 127.0.0.1")
