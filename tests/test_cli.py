"""The ``mesh`` command: argument checking, error messages and exit codes,
``mesh members`` against nothing, and ``mesh up`` starting and stopping a
local mesh."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mesh.cli import build_parser, config_overrides, main
from mesh.errors import ConfigError
from tests.procs import FAST, REPO, config_flags, free_ports, members, run_cli, statuses, wait_until


def test_join_defaults_bind_to_loopback_7946_with_a_worker_per_core() -> None:
    args = build_parser().parse_args(["join", "--name", "a"])
    assert args.bind == ("127.0.0.1", 7946)
    assert args.seed == [] and args.workers == (os.cpu_count() or 1) and args.replicas is None


def test_up_shares_the_cores_among_its_nodes_unless_workers_is_given() -> None:
    from mesh.cli.up import node_args

    args = build_parser().parse_args(["up", "--nodes", "3"])
    argv = node_args(args, 0)
    assert argv[argv.index("--workers") + 1] == str(max(1, (os.cpu_count() or 1) // 3))
    args = build_parser().parse_args(["up", "--nodes", "3", "--workers", "4"])
    argv = node_args(args, 2)
    assert argv[argv.index("--workers") + 1] == "4"


def test_join_collects_repeated_seeds() -> None:
    args = build_parser().parse_args(
        ["join", "--seed", "127.0.0.1:1", "--seed", "[::1]:2", "--seed", "localhost:3"]
    )
    assert args.seed == [("127.0.0.1", 1), ("::1", 2), ("127.0.0.1", 3)]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["join", "--bind", "127.0.0.1"], "invalid --bind address '127.0.0.1'"),
        (["join", "--bind", "host:port"], "invalid --bind address 'host:port'"),
        (["join", "--seed", "1.2.3.4:70000"], "invalid --seed address '1.2.3.4:70000'"),
        (["members", "--address", "nowhere"], "invalid --address 'nowhere'"),
        (["join", "--workers", "0"], "0 is not a positive number"),
        (["up", "--nodes", "two"], "'two' is not a whole number"),
    ],
)
def test_bad_values_exit_2_with_a_message_naming_the_value(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_bad_config_override_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["join", "--set", "probe_intervall=1"]) == 2
    assert "probe_intervall=1" in capsys.readouterr().err
    assert main(["join", "--set", "probe_interval=fast"]) == 2
    assert "'fast' is not a float" in capsys.readouterr().err


def test_config_overrides_take_the_type_of_each_default() -> None:
    got = config_overrides(["probe_interval=0.25", "indirect-checks=5", "max_datagram=1200"])
    assert got == {"probe_interval": 0.25, "indirect_checks": 5, "max_datagram": 1200}
    assert type(got["indirect_checks"]) is int
    with pytest.raises(ConfigError):
        config_overrides(["extra=1"])


def test_missing_secret_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["join", "--secret-file", str(tmp_path / "none")]) == 2
    assert "cannot read the secret file" in capsys.readouterr().err


def test_members_where_nothing_listens_exits_1_with_a_clear_error() -> None:
    (port,) = free_ports(1)
    for command in ("members", "ring"):
        out = run_cli(command, "--address", f"127.0.0.1:{port}")
        assert out.returncode == 1
        assert f"no mesh node answered at 127.0.0.1:{port}" in out.stderr
        assert "connection refused" in out.stderr
        assert "Traceback" not in out.stderr


def test_join_on_a_port_in_use_exits_1_naming_the_address(cluster) -> None:
    node = cluster.start("first")
    wait_until(lambda: node.statuses(), 10, "the first node to serve")
    out = run_cli("join", "--bind", node.bind, "--name", "second")
    assert out.returncode == 1
    assert f"cannot listen on {node.bind}" in out.stderr
    assert "Traceback" not in out.stderr


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_starts_n_nodes_prints_them_and_ctrl_c_ends_every_one(tmp_path: Path) -> None:
    base = free_ports(3, consecutive=True)[0]
    log = tmp_path / "up.out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("MESH_SECRET", None)
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "mesh.cli", "up", "--nodes", "3", "--base-port", str(base),
             "--workers", "2", *config_flags(FAST)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO,
        )
    pids: list[int] = []
    try:
        lines = wait_until(
            lambda: [ln for ln in log.read_text().splitlines() if " pid " in ln][:3]
            if log.read_text().count(" pid ") >= 3 else None,
            10,
            "mesh up to print three nodes",
        )
        names = []
        for i, line in enumerate(lines):
            name, addr, _, pid = line.split()
            assert addr == f"127.0.0.1:{base + i}"
            names.append(name)
            pids.append(int(pid))
        assert names == ["node1", "node2", "node3"]

        def all_alive() -> bool:
            return all(
                statuses(("127.0.0.1", base + i)) == dict.fromkeys(names, "alive")
                for i in range(3)
            )

        wait_until(all_alive, 15, "the three nodes to see each other alive")
        seen = members(("127.0.0.1", base))
        assert [seen[n]["meta"]["workers"] for n in names] == [2, 2, 2]
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=15) == 0, log.read_text()
        assert not [pid for pid in pids if _pid_alive(pid)]
        text = log.read_text()
        assert text.count("signal received; leaving the mesh") == 3, text
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
