"""Sizes for the command line (``--memory-limit 2GiB``, ``500MB``, ``40%``,
``1000000``) and the default memory budget of a node."""

from __future__ import annotations

import math
import os
import re
import shutil

from mesh.errors import ConfigError

UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1 << 10,
    "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
    "g": 1000**3, "gb": 1000**3, "gib": 1 << 30,
    "t": 1000**4, "tb": 1000**4, "tib": 1 << 40,
}
"""Decimal units (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB,
GiB, TiB) powers of 1024, as in Dask's ``parse_bytes``; case does not matter."""

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z%]*)\s*$", re.IGNORECASE)


def machine_memory() -> int:
    """Bytes of RAM of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str, *, total: int | None = None, option: str = "--memory-limit") -> int:
    """Bytes meant by ``text``: a number with an optional unit, or a
    percentage of ``total`` (the machine's RAM when not given). Raises
    :class:`~mesh.errors.ConfigError` (a ``ValueError``) naming ``option``
    and the bad input."""
    if not isinstance(text, str):
        raise ConfigError(f"{option} {text!r}: give a size as text, such as 2GiB, 500MB or 40%")
    m = _SIZE.match(text)
    if m is None:
        raise ConfigError(f"{option} {text!r}: not a size; give a number of bytes with an "
                          f"optional unit (2GiB, 500MB, 1000000) or a percentage of RAM (40%)")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "%":
        if not 0 < number <= 100:
            raise ConfigError(f"{option} {text!r}: a percentage must be above 0 and at most 100")
        return int((machine_memory() if total is None else total) * number / 100)
    if unit not in UNITS:
        raise ConfigError(f"{option} {text!r}: unknown unit {m.group(2)!r}; use B, KB, KiB, "
                          f"MB, MiB, GB, GiB, TB, TiB or a percentage such as 40%")
    size = number * UNITS[unit]
    if not math.isfinite(size) or size >= 1 << 63:
        raise ConfigError(f"{option} {text!r}: too large")
    if unit in ("", "b") and not number.is_integer():
        raise ConfigError(f"{option} {text!r}: a number of bytes must be whole")
    return int(size)


def default_memory_limit(nodes: int, share: float, *, total: int | None = None) -> int:
    """The memory budget of each of ``nodes`` nodes started on one machine
    (``mesh up`` starts several; ``mesh join`` one): ``share`` of the RAM,
    split evenly."""
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, not {nodes}")
    if not 0 < share <= 1:
        raise ValueError(f"share must be above 0 and at most 1, not {share}")
    return int((machine_memory() if total is None else total) * share / nodes)


def spill_limit(path: str, reserve: int) -> int:
    """Bytes the store may spill to ``path``: the free space of its file
    system now, less ``reserve`` (never below 0)."""
    return max(0, shutil.disk_usage(path).free - reserve)
