"""mesh.secrets: loading the cluster secret, the bind check, address syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.errors import ConfigError, InsecureBindError
from mesh.secrets import (
    check_bind,
    format_address,
    is_loopback,
    load_secret,
    load_secrets,
    parse_address,
)
from tests.procs import FAST, Cluster, parse_json_line, run_cli


def test_secret_file_wins_over_the_environment_and_loses_one_trailing_newline(
    tmp_path: Path,
) -> None:
    f = tmp_path / "s"
    f.write_bytes(b"from-file\n")
    assert load_secret(str(f), env={"MESH_SECRET": "from-env"}) == b"from-file"
    f.write_bytes(b"crlf\r\n")
    assert load_secret(str(f), env={}) == b"crlf"
    f.write_bytes(b"keeps inner\nlines and spaces \n\n")
    assert load_secret(str(f), env={}) == b"keeps inner\nlines and spaces \n"
    f.write_bytes(b"\x00\xffbinary")
    assert load_secret(str(f), env={}) == b"\x00\xffbinary"


def test_secret_from_environment_when_no_file_and_none_when_neither() -> None:
    assert load_secret(None, env={"MESH_SECRET": "s3cret"}) == b"s3cret"
    assert load_secret(None, env={"MESH_SECRET": ""}) is None
    assert load_secret(None, env={}) is None


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n"])
def test_empty_secret_file_is_an_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "empty"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match="empty") as err:
        load_secret(str(f), env={"MESH_SECRET": "ignored"})
    assert str(f) in str(err.value)


def test_missing_secret_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="cannot read the secret file") as err:
        load_secret(str(missing))
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "192.168.1.1", "::", "fd00::1", "example"])
def test_non_loopback_bind_needs_a_secret(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(InsecureBindError) as err:
        check_bind(host, None)
    msg = str(err.value)
    assert host in msg and "--secret-file" in msg and "MESH_SECRET" in msg
    check_bind(host, b"secret")  # fine with one


@pytest.mark.parametrize(
    ("text", "addr"),
    [
        ("127.0.0.1:7946", ("127.0.0.1", 7946)),
        ("localhost:80", ("127.0.0.1", 80)),
        ("10.0.0.5:1", ("10.0.0.5", 1)),
        ("[::1]:7946", ("::1", 7946)),
        ("node-1.internal:65535", ("node-1.internal", 65535)),
    ],
)
def test_parse_address_accepts_host_port(text: str, addr: tuple[str, int]) -> None:
    assert parse_address(text) == addr
    if text.startswith("localhost"):
        return
    assert format_address(addr) == text


@pytest.mark.parametrize(
    "text", ["", "7946", "127.0.0.1", ":7946", "h:0", "h:65536", "h:x", "::1:7946", "[::1]7946",
             "[nope]:1", "a b:1"]
)
def test_parse_address_rejects_bad_values_naming_them(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_address(text, "--seed address")
    assert repr(text.strip()) in str(err.value)
    assert "--seed address" in str(err.value)


def test_repeated_secret_files_give_every_secret_first_one_first(tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    new.write_bytes(b"new\n")
    old.write_bytes(b"old\n")
    assert load_secrets([str(new), str(old)], env={"MESH_SECRET": "env"}) == [b"new", b"old"]
    assert load_secrets(None, env={"MESH_SECRET": "env"}) == [b"env"]
    assert load_secrets([], env={}) == []
    with pytest.raises(ConfigError, match="missing"):
        load_secrets([str(new), str(tmp_path / "missing")], env={})


@pytest.mark.parametrize("workers", ["1000", str(2**62)])
def test_join_refuses_more_workers_than_a_node_may_announce(workers: str) -> None:
    out = run_cli("join", "--workers", workers, "--name", "x", timeout=20)
    assert out.returncode == 2
    assert "Config.max_workers" in out.stderr and workers in out.stderr


def test_members_opens_a_rotating_mesh_with_either_secret_listed_first(
    cluster: Cluster, tmp_path: Path,
) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    new.write_bytes(b"new")
    old.write_bytes(b"old")
    node = cluster.start("rot", config=FAST,
                         extra=["--secret-file", str(old), "--secret-file", str(new)])
    node.secret = b"old"
    cluster.wait_converged([node], timeout=15)
    for files in ([old], [new, old], [old, new]):
        args = [a for f in files for a in ("--secret-file", str(f))]
        out = run_cli("members", "--address", node.bind, "--json", *args, timeout=20)
        assert out.returncode == 0, out.stderr
        assert [m["name"] for m in parse_json_line(out.stdout)] == ["rot"]
    # the node prefers "old" but answers a query in the secret it used: a
    # query holding only "new" reads the reply
    alone = run_cli("members", "--address", node.bind, "--json", "--secret-file", str(new),
                    timeout=20)
    assert alone.returncode == 0, alone.stderr
    assert [m["name"] for m in parse_json_line(alone.stdout)] == ["rot"]
    other = tmp_path / "other"
    other.write_bytes(b"other")
    denied = run_cli("members", "--address", node.bind, "--secret-file", str(other), timeout=20)
    assert denied.returncode == 1 and "secret" in denied.stderr
