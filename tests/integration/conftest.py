"""Fixtures for tests against the real mini cluster and a real hub (subprocess, CHP, PAM)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

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
