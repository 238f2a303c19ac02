"""Helpers for tests that run real ``mesh join`` processes on 127.0.0.1.

:class:`Cluster` starts processes, remembers every one of them, and
:meth:`Cluster.close` kills whatever is still running; the ``cluster`` fixture
in ``conftest.py`` calls it in a ``finally``. Waiting is always polling with a
deadline (:func:`wait_until`), never a bare sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench._ports import free_ports
from mesh.addresses import format_address
from mesh.config import DEFAULT
from mesh.wire import Codec

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
MESH = [sys.executable, "-m", "mesh.cli"]

FAST = {
    "probe_interval": 0.2,
    "probe_timeout": 0.1,
    "gossip_interval": 0.05,
    "suspicion_mult": 2,
    "push_pull_interval": 2.0,
    "join_retry_initial": 0.1,
    "join_retry_max": 0.3,
}
"""Config overrides for quick failure detection in tests (passed as hidden
``--set KEY=VALUE`` flags). ``mesh.config.DEFAULT.with_(**FAST)`` gives the
matching Config for bounds."""

def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail
    with ``what`` after ``timeout`` seconds. Exceptions from ``probe`` count as
    not yet (the last one is shown on failure)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def api(
    addr: tuple[str, int], path: str, payload: Any = None, secret: bytes | None = None,
    timeout: float = 2.0,
) -> Any:
    """POST a sealed ``payload`` to a node's HTTP API and open the sealed reply."""
    codec = Codec(secret, DEFAULT.max_http_body)
    req = urllib.request.Request(
        f"http://{format_address(addr)}{path}",
        data=codec.seal({} if payload is None else payload),
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return codec.open(resp.read())


def statuses(addr: tuple[str, int], secret: bytes | None = None) -> dict[str, str]:
    """``{name: status}`` as the node at ``addr`` sees the mesh."""
    return {m["name"]: m["status"] for m in api(addr, "/v1/members", secret=secret)["members"]}


def members(addr: tuple[str, int], secret: bytes | None = None) -> dict[str, dict]:
    """``{name: member dict}`` as the node at ``addr`` sees the mesh."""
    return {m["name"]: m for m in api(addr, "/v1/members", secret=secret)["members"]}


def metrics(addr: tuple[str, int], secret: bytes | None = None) -> dict[str, int]:
    return api(addr, "/v1/metrics", secret=secret)


def config_flags(overrides: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key in sorted(overrides):
        flags += ["--set", f"{key}={overrides[key]}"]
    return flags


@dataclass
class MeshProc:
    """One ``mesh join`` process."""

    name: str
    addr: tuple[str, int]
    popen: subprocess.Popen
    log_path: Path
    secret: bytes | None = None

    @property
    def bind(self) -> str:
        return format_address(self.addr)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def statuses(self) -> dict[str, str]:
        return statuses(self.addr, self.secret)

    def members(self) -> dict[str, dict]:
        return members(self.addr, self.secret)


@dataclass
class Cluster:
    """Starts ``mesh join`` processes and guarantees they all end in :meth:`close`."""

    tmp: Path
    procs: list[MeshProc] = field(default_factory=list)
    _n: int = 0

    def start(
        self,
        name: str,
        port: int | None = None,
        seeds: Sequence[tuple[str, int] | MeshProc] = (),
        config: dict[str, Any] | None = None,
        extra: Sequence[str] = (),
        secret: bytes | None = None,
        host: str = "127.0.0.1",
    ) -> MeshProc:
        port = port if port is not None else free_ports(1)[0]
        args = [*MESH, "join", "--bind", format_address((host, port)), "--name", name]
        for seed in seeds:
            addr = seed.addr if isinstance(seed, MeshProc) else seed
            args += ["--seed", format_address(addr)]
        args += config_flags(config or {})
        if secret is not None:
            self._n += 1
            secret_path = self.tmp / f"secret-{self._n}"
            secret_path.write_bytes(secret + b"\n")
            args += ["--secret-file", str(secret_path)]
        args += list(extra)
        self._n += 1
        if "--spill-dir" not in extra:  # under tmp: a killed node cannot remove its own
            args += ["--spill-dir", str(self.tmp / f"spill-{name}-{self._n}")]
        log_path = self.tmp / f"{name}-{self._n}.log"
        env = dict(os.environ)
        env.pop("MESH_SECRET", None)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        with open(log_path, "wb") as log_file:
            popen = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env=env, cwd=REPO,
            )
        proc = MeshProc(name, (host if host != "0.0.0.0" else "127.0.0.1", port), popen,
                        log_path, secret)
        self.procs.append(proc)
        return proc

    def start_many(self, n: int, config: dict[str, Any] | None = None,
                   prefix: str = "n", **kw: Any) -> list[MeshProc]:
        """``n`` nodes, each seeded with the first one (the first with the second)."""
        ports = free_ports(n)
        addrs = [("127.0.0.1", p) for p in ports]
        out = []
        for i in range(n):
            seeds = [addrs[0]] if i else addrs[1:2]
            out.append(self.start(f"{prefix}{i + 1}", ports[i], seeds, config, **kw))
        return out

    def wait_converged(self, procs: Sequence[MeshProc], timeout: float) -> None:
        """Until every node in ``procs`` lists every node in ``procs`` as alive."""
        names = sorted(p.name for p in procs)

        def converged() -> bool:
            for p in procs:
                if not p.running():
                    raise AssertionError(f"{p.name} exited early:\n{p.log()}")
                st = p.statuses()
                if [n for n in names if st.get(n) != "alive"]:
                    return False
            return True

        wait_until(converged, timeout, f"{names} to see each other alive")

    def close(self) -> None:
        """Kill every process still running and reap them all."""
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
        for p in self.procs:
            try:
                p.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.popen.pid, signal.SIGKILL)
                p.popen.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()}" for p in self.procs)


def run_cli(*args: str, timeout: float = 20.0, env: dict[str, str] | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m mesh.cli ARGS`` to completion; returns the completed
    process with text stdout and stderr."""
    full_env = dict(os.environ)
    full_env.pop("MESH_SECRET", None)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run(
        [*MESH, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO,
        input=input.decode() if input is not None else None,
    )


def parse_json_line(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])
