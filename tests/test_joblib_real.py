"""The ``"mesh"`` joblib backend on a real 3-node mesh (``mesh join``
processes on 127.0.0.1, all ended by the module fixture)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

joblib = pytest.importorskip("joblib")

from mesh.client import Client  # noqa: E402
from tests import test_client_real  # noqa: E402
from tests.procs import REPO, MeshProc, api  # noqa: E402

mesh3 = test_client_real.mesh3  # one 3-node mesh for this module, ended at its end
client = test_client_real.client


def square(x: int) -> int:
    return x * x


def where(x: int) -> tuple[int, int]:
    return x, os.getpid()


def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def nested(n: int) -> tuple[int, set[int], int]:
    """Runs a Parallel inside a task: returns its sum, the pids that ran the
    inner calls and this task's pid."""
    out = joblib.Parallel(n_jobs=2)(joblib.delayed(where)(i) for i in range(n))
    return sum(x for x, _ in out), {pid for _, pid in out}, os.getpid()


def completed(procs: list[MeshProc]) -> int:
    return sum(api(p.addr, "/v1/exec/stats")["completed"] for p in procs)


def test_parallel_runs_on_the_mesh(client: Client) -> None:
    with joblib.parallel_backend("mesh", client=client):
        out = joblib.Parallel(n_jobs=-1)(joblib.delayed(where)(i) for i in range(50))
    assert [x for x, _ in out] == list(range(50))
    assert os.getpid() not in {pid for _, pid in out}


def test_the_client_defaults_to_the_most_recent_one(client: Client) -> None:
    with joblib.parallel_backend("mesh"):
        assert joblib.Parallel()(joblib.delayed(square)(i) for i in range(10)) == [
            i * i for i in range(10)]


def test_short_calls_are_batched(mesh3: list[MeshProc], client: Client) -> None:
    before = completed(mesh3)
    with joblib.parallel_backend("mesh", client=client):
        out = joblib.Parallel(n_jobs=-1)(joblib.delayed(square)(i) for i in range(2000))
    assert out == [i * i for i in range(2000)]
    tasks = completed(mesh3) - before
    assert 0 < tasks < 500, tasks


def test_a_nested_parallel_runs_inside_the_task(client: Client) -> None:
    with joblib.parallel_backend("mesh", client=client):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(nested)(n) for n in (5, 6))
    for (total, inner_pids, task_pid), n in zip(out, (5, 6), strict=True):
        assert total == sum(range(n))
        assert inner_pids == {task_pid}  # run in the task's own worker, not sent back


def test_an_error_in_a_call_is_raised(client: Client) -> None:
    with joblib.parallel_backend("mesh", client=client), pytest.raises(ValueError,
                                                                       match=r"boom [13]"):
        joblib.Parallel(n_jobs=2)(joblib.delayed(boom)(i) for i in (1, 3))


def test_grid_search_finds_the_same_parameters_as_n_jobs_1(client: Client) -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    x, y = load_digits(return_X_y=True)
    x, y = x[:900], y[:900]  # the workers' first sklearn import dominates: keep fits small
    grid = {"C": [1, 10], "gamma": [1e-4, 1e-3, 1e-2]}
    local = GridSearchCV(SVC(), grid, cv=3, n_jobs=1).fit(x, y)
    with joblib.parallel_backend("mesh", client=client):
        meshed = GridSearchCV(SVC(), grid, cv=3, n_jobs=-1).fit(x, y)
    assert meshed.best_params_ == local.best_params_
    assert meshed.best_score_ == pytest.approx(local.best_score_)


def test_importing_mesh_registers_the_backend_lazily() -> None:
    code = ("import sys, mesh\n"
            "assert 'joblib' not in sys.modules and 'dask' not in sys.modules\n"
            "import joblib.parallel\n"
            "assert 'mesh' in joblib.parallel.BACKENDS\n"
            "assert 'mesh.integrations.joblib' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_without_joblib_the_backend_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mesh.integrations.joblib", raising=False)
    monkeypatch.setitem(sys.modules, "joblib", None)
    with pytest.raises(ImportError, match=r"pip install 'mesh\[joblib\]'"):
        import mesh.integrations.joblib  # noqa: F401
