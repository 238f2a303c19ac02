"""Who may read the dashboard, its event stream and /metrics: open on a
loopback bind, the read token (never the secret) on any other bind."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from bench._ports import free_ports
from mesh.ops._token import ReadAccess, read_token
from tests.procs import Cluster, MeshProc, run_cli, wait_until

SECRET = b"dashboard-test-secret"
GUARDED = ("/", "/events", "/metrics", "/v1/ops/snapshot")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and the first bytes of a GET (an event stream never ends)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read(64)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def up(proc: MeshProc) -> bool:
    return get(f"http://{proc.bind}/static/app.js")[0] == 200


def test_the_read_token_is_derived_from_the_secret_and_is_not_the_secret() -> None:
    token = read_token(SECRET)
    assert len(token) == 32 and SECRET.hex() not in token and token != SECRET.decode()
    assert read_token(SECRET) == token and read_token(b"other") != token
    access = ReadAccess("10.0.0.5", SECRET)
    assert not access.open
    assert access.allows({}, {"token": token})
    assert access.allows({"Authorization": f"Bearer {token}"}, {})
    assert not access.allows({}, {"token": SECRET.decode()})
    assert not access.allows({"Authorization": f"Basic {token}"}, {})
    assert ReadAccess("127.0.0.1", SECRET).open and ReadAccess("::1", None).open


@pytest.fixture
def exposed(cluster: Cluster) -> MeshProc:
    """A node bound to the wildcard address (a non-loopback bind, so it needs
    a secret) and reached over loopback only."""
    port = free_ports(1)[0]
    proc = cluster.start("wild", port, host="0.0.0.0", secret=SECRET,
                         extra=["--workers", "1", "--advertise", f"127.0.0.1:{port}"])
    wait_until(lambda: up(proc), 15, "the exposed node to serve HTTP")
    return proc


def test_a_non_loopback_bind_answers_401_without_the_token(exposed: MeshProc) -> None:
    base = f"http://{exposed.bind}"
    token = read_token(SECRET)
    for path in GUARDED:
        status, body = get(base + path)
        assert status == 401, path
        assert b"mesh token" in body
        assert get(base + path + "?token=" + "0" * 32)[0] == 401, path
        assert get(base + path, {"Authorization": f"Bearer {SECRET.decode()}"})[0] == 401
    for path in GUARDED:
        sep = "&" if "?" in path else "?"
        assert get(f"{base}{path}{sep}token={token}")[0] == 200, path
        assert get(base + path, {"Authorization": f"Bearer {token}"})[0] == 200, path
    status, body = get(base + "/metrics", {"Authorization": f"Bearer {token}"})
    assert body.startswith(b"# HELP mesh_")


def test_mesh_token_prints_the_url_that_opens_the_dashboard(
    exposed: MeshProc, tmp_path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    done = run_cli("token", "--address", exposed.bind, "--secret-file", str(secret_file))
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url == f"http://{exposed.bind}/?token={read_token(SECRET)}"
    status, body = get(url)
    assert status == 200 and body.startswith(b"<!doctype html>")
    no_secret = run_cli("token", "--address", exposed.bind)
    assert no_secret.returncode == 2 and "no cluster secret" in no_secret.stderr


def test_the_pages_change_nothing(exposed: MeshProc) -> None:
    base = f"http://{exposed.bind}"
    token = read_token(SECRET)
    for method in ("PUT", "DELETE", "PATCH"):
        request = urllib.request.Request(f"{base}/metrics?token={token}", method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 405
    # A POST is the sealed API: without the secret's MAC it is refused.
    request = urllib.request.Request(f"{base}/metrics?token={token}", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code in (400, 401)


def test_a_loopback_bind_is_open(cluster: Cluster) -> None:
    proc = cluster.start("lo", extra=["--workers", "1"])
    wait_until(lambda: up(proc), 15, "the node to serve HTTP")
    for path in GUARDED:
        assert get(f"http://{proc.bind}{path}")[0] == 200, path


def test_mesh_status_reads_an_exposed_node_with_the_secret(exposed: MeshProc, tmp_path) -> None:
    refused = run_cli("status", "--address", exposed.bind)
    assert refused.returncode == 1 and "401" in refused.stderr and "--secret-file" in refused.stderr
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    done = run_cli("status", "--address", exposed.bind, "--secret-file", str(secret_file))
    assert done.returncode == 0, done.stderr
    assert "wild" in done.stdout
