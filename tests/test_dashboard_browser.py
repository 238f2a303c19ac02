"""The dashboard in a real headless Chromium, on a real 3-node mesh.

It shows 3 alive members; after ``kill -9`` of one node the open page shows
it dead without a reload. Screenshots go to ``tests/artifacts/``.

A machine without Chromium and its driver (Debian's ``chromium`` and
``chromium-driver``; ``.ci/run`` installs them) FAILS this test, saying what
to install. ``MESH_SKIP_BROWSER=1`` turns that into a skip, for a developer
who knowingly runs without a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh import Client
from tests.procs import FAST, Cluster, MeshProc, wait_until
from tests.test_client_real import start_mesh

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = ("NO BROWSER: the dashboard test needs headless Chromium and chromedriver "
               "(apt-get install -y chromium chromium-driver; .ci/run does this). "
               f"Found chromium={chromium!r}, chromedriver={driver!r}.")
    if os.environ.get("MESH_SKIP_BROWSER") == "1":
        pytest.skip(message + " Skipped because MESH_SKIP_BROWSER=1.")
    pytest.fail(message + " Set MESH_SKIP_BROWSER=1 to skip on purpose.")


@pytest.fixture
def browser() -> Iterator[object]:
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def member_statuses(driver: object) -> dict[str, str]:
    rows = driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('#members tbody tr')]"
        ".map(r => [r.dataset.member, r.dataset.status]);")
    return dict(rows)


def slow_square(x: int) -> int:
    import time

    time.sleep(0.002)
    return x * x


def test_dashboard_shows_the_mesh_live_and_a_killed_node_dead(
    cluster: Cluster, browser: object
) -> None:
    driver = browser
    procs: list[MeshProc] = start_mesh(cluster, 3, config=FAST)
    names = sorted(p.name for p in procs)
    driver.get(f"http://{procs[0].bind}/")  # type: ignore[attr-defined]
    wait_until(lambda: member_statuses(driver) == dict.fromkeys(names, "alive"), 20,
               "the page to show 3 alive members")
    wait_until(lambda: driver.execute_script(  # type: ignore[attr-defined]
        "return document.querySelectorAll('#nodes tbody tr[data-node]').length") == 3, 20,
        "the page to show the figures of all 3 nodes")

    with Client([p.bind for p in procs]) as client:
        futures = client.map(slow_square, range(400), pure=False)
        assert client.gather(futures)[-1] == 399 * 399
        wait_until(lambda: driver.execute_script(  # type: ignore[attr-defined]
            "return document.querySelectorAll('#tasks tbody tr').length") > 0, 20,
            "the task stream to show finished tasks")
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard-alive.png"))  # type: ignore[attr-defined]

    driver.execute_script("window.__not_reloaded = true;")  # type: ignore[attr-defined]
    victim = procs[2]
    victim.popen.kill()  # kill -9
    victim.popen.wait(10)
    wait_until(lambda: member_statuses(driver).get(victim.name) == "dead", 30,
               f"the page to show {victim.name} dead")
    assert driver.execute_script("return window.__not_reloaded === true;")  # type: ignore[attr-defined]
    statuses = member_statuses(driver)
    assert [statuses[p.name] for p in procs[:2]] == ["alive", "alive"]
    driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))  # type: ignore[attr-defined]
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
