"""The code the simulator runs is the code ``mesh join`` runs: the same module
objects, no simulator-only branch anywhere under ``mesh/``."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import mesh.gossip
import mesh.node
from mesh.wire._transport import SecureRuntime
from sim.runner import Simulation
from sim.runtime import SimRuntime
from sim.scenario import Scenario

MESH = Path(mesh.__file__).resolve().parent


def test_simulated_nodes_are_the_real_node_and_gossip_classes() -> None:
    sim = Simulation(Scenario(nodes=3, duration=5.0), seed=1)
    seen: list[object] = []
    sim.loop.call_at(4.0, lambda: seen.extend(n for n in sim.nodes if n is not None))
    result = sim.run()
    assert result.messages_sent > 0 and len(seen) == 3
    node = seen[0]
    assert type(node) is mesh.node.Node
    assert type(node.driver) is mesh.gossip.GossipDriver  # type: ignore[attr-defined]
    assert type(node.membership) is mesh.gossip.Membership  # type: ignore[attr-defined]
    # the node speaks through the wire's handshakes, over the simulated runtime
    assert type(node.runtime) is SecureRuntime  # type: ignore[attr-defined]
    assert isinstance(node.runtime.inner, SimRuntime)  # type: ignore[attr-defined]
    # the very module objects a normal import gives (no reloaded or patched copy)
    assert importlib.import_module("mesh.node") is mesh.node
    assert inspect.getmodule(type(node)) is mesh.node
    assert inspect.getsourcefile(type(node.driver)) == str(MESH / "gossip" / "_driver.py")  # type: ignore[attr-defined]


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module:
            names.append(n.module)
    return names


def test_no_module_under_mesh_imports_or_checks_for_the_simulator() -> None:
    offenders: list[str] = []
    for path in sorted(MESH.rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        for name in _imports(tree):
            # the command-line front end registers `mesh sim`; nothing else may
            if path == MESH / "cli" / "sim.py" and name == "sim.cli":
                continue
            if name == "sim" or name.startswith("sim."):
                offenders.append(f"{path}: imports {name}")
        for n in ast.walk(tree):
            # a branch on the runtime's type or on a "simulated" flag
            if isinstance(n, ast.Name | ast.Attribute):
                ident = n.id if isinstance(n, ast.Name) else n.attr
                if ident in ("SimRuntime", "SimLoop", "simulated", "is_sim", "SIMULATION"):
                    offenders.append(f"{path}:{n.lineno}: refers to {ident}")
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in (
                "SimRuntime", "SimLoop", "sim.runtime"
            ):
                offenders.append(f"{path}:{n.lineno}: names {n.value!r}")
    assert offenders == []
