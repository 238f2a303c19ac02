"""The package layout: no import cycles under mesh/ or sim/ (function-local
imports included), a light ``import mesh``, modules of at most 400 lines, and
the wheel's contents."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mesh", "sim")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every module of ours that ``name`` imports at run time, anywhere in its
    body (imports under ``if TYPE_CHECKING:`` never run and do not count)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                up = here[: len(here) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _cycles() -> list[list[str]]:
    mods = _modules()
    graph = {m: sorted(_imports(m, p, mods)) for m, p in mods.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in graph[m]:
            # A package's __init__ importing its own submodules is how a
            # package builds its surface, not a cycle between concepts.
            if d.startswith(m + ".") and mods[m].name == "__init__.py":
                continue
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_no_import_cycles_under_mesh_or_sim() -> None:
    assert _cycles() == []


def test_the_cycle_check_sees_function_local_imports(tmp_path: Path) -> None:
    src = "def f():\n    from mesh.cli import main\n"
    path = tmp_path / "x.py"
    path.write_text(src)
    assert _imports("mesh.x", path, _modules()) == {"mesh.cli"}


def test_import_mesh_loads_neither_the_node_nor_the_worker_pool() -> None:
    code = ("import sys, mesh; heavy = ('mesh.node', 'mesh.exec', 'mesh.placement', "
            "'mesh.gossip', 'mesh.cli'); print(sorted(m for m in sys.modules "
            "if m in heavy or m.startswith(tuple(h + '.' for h in heavy))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip()
    assert out == "[]"


def test_no_module_under_mesh_is_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in sorted((REPO / "mesh").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_wheel_ships_mesh_and_sim_but_not_bench() -> None:
    import tomllib

    import setuptools

    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]
    tops = {p.split(".")[0] for p in setuptools.find_packages(str(REPO), **find)}
    assert tops == {"mesh", "sim"}
    assert {"mesh.cli", "mesh.protocol", "mesh.exec"} <= set(
        setuptools.find_packages(str(REPO), **find))


def test_only_the_sync_bridge_reads_the_clock_in_the_client() -> None:
    """The client protocol is sans-IO: no clock, randomness, threads or
    sockets; the driver reads time from the runtime, and only the bridge that
    blocks the user's thread (``Waits.wait_states``) reads the real clock."""
    banned = {"time", "random", "threading", "socket", "asyncio", "os", "secrets"}
    tree = ast.parse((REPO / "mesh" / "_client_protocol.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & banned, ast.dump(node)
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in banned, node.module
    def clock_readers(module: str) -> set[str]:
        tree = ast.parse((REPO / "mesh" / module).read_text())
        readers = set()
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                            and node.value.id == "time"):
                        readers.add(fn.name)
        return readers
    assert clock_readers("_client_core.py") == set()
    assert clock_readers("_client_wait.py") == {"wait_states", "_wait"}
