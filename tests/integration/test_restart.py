"""Hub restarts: the hub's state survives a crash, and jobs that ended meanwhile are noticed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from .conftest import HubProcess, launch, queued_jobs


@pytest.fixture
def own_hub() -> Iterator[HubProcess]:
    hub = launch()
    yield hub
    hub.shutdown()


@pytest.mark.slow
def test_a_job_that_ended_while_the_hub_was_down_is_cleaned_up_at_restart(own_hub: HubProcess):
    hub = own_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    hub.kill_and_restart(between=lambda: subprocess.run(["scancel", job_id], check=True))
    t0 = time.monotonic()
    while hub.server("alice") is not None and time.monotonic() - t0 < 60:
        time.sleep(0.5)
    assert hub.server("alice") is None
    assert time.monotonic() - t0 < 30, "the hub waited for a server whose job had ended"
    home = hub.login("alice", "alice-aif").get(f"{hub.url}/hub/home", timeout=30).text
    assert f"Your JupyterLab job {job_id} has ended: it was cancelled" in home


@pytest.mark.slow
def test_a_running_server_survives_a_hub_crash(own_hub: HubProcess):
    hub = own_hub
    hub.start_ready("bob")
    (job_id,) = queued_jobs("bob")
    hub.kill_and_restart()
    assert queued_jobs("bob")[job_id]["state"] == "RUNNING", "the restart cancelled the job"
    hub.wait_ready("bob", timeout=60)
    assert hub.through_proxy("bob", hub.user_token("bob")).status_code == 200
    hub.stop("bob")
