"""Fixtures for tests against the real mini cluster and a real hub (subprocess, CHP, PAM)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (  # noqa: F401 - re-exported for the test modules
    CLUSTER,
    POLL_INTERVAL,
    REPO,
    TEST_JOB_NAME,
    VENV,
    HubProcess,
    launch,
    queued_jobs,
    sh,
)


@pytest.fixture(scope="session", autouse=True)
def cluster() -> None:
    if subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True).returncode != 0:
        pytest.fail("the mini cluster is not running: `make test` starts it (or: bash cluster/minicluster.sh start)")


@pytest.fixture(scope="session")
def hub() -> Iterator[HubProcess]:
    hub = launch()
    yield hub
    hub.shutdown()


@pytest.fixture
def clean(hub: HubProcess) -> Iterator[HubProcess]:
    """A test that starts servers leaves none behind, and no test job in the queue."""
    yield hub
    for name in ("alice", "bob", "instructor"):
        if hub.api("GET", f"/users/{name}").status_code == 200 and hub.server(name) is not None:
            hub.stop(name)
    deadline = time.monotonic() + 30
    while queued_jobs() and time.monotonic() < deadline:
        time.sleep(0.5)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium_page(*args: str):
    """A page of Debian's Chromium, headless; like users' browsers it resolves every name under
    .localhost to this machine. ``args``: more of Chromium's switches."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *args])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
