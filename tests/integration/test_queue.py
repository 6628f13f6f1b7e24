"""A job that cannot start at once waits in the queue, says why, and is never cancelled just
for waiting: the start timeout counts only from the moment the job runs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from .conftest import HubProcess, launch, queued_jobs, sh, wait_for

START_TIMEOUT = 10


@pytest.fixture(scope="module")
def impatient_hub() -> Iterator[HubProcess]:
    hub = launch(hub={"start_timeout": START_TIMEOUT})
    yield hub
    hub.shutdown()


def progress_events(hub: HubProcess, user: str, seconds: float) -> list[dict]:
    """The events the spawn-pending page shows, read from the progress stream for a while."""
    events, deadline = [], time.monotonic() + seconds
    try:
        with hub.api("GET", f"/users/{user}/server/progress", stream=True, timeout=(5, seconds)) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                if time.monotonic() > deadline:
                    break
    except requests.RequestException:
        pass  # no new message before the read timeout
    return events


@pytest.mark.slow
def test_a_queued_job_outlives_the_start_timeout_and_starts_when_the_node_frees(
    impatient_hub: HubProcess, full_partition: str
):
    hub = impatient_hub
    t0 = time.monotonic()
    assert hub.start("alice").status_code == 202
    events = progress_events(hub, "alice", START_TIMEOUT + 2)
    queued = [e for e in events if "is queued in gpp" in e.get("message", "")]
    assert queued, events
    message, job = queued[-1]["message"], queued[-1]["job"]
    assert "(position 1 of 1): waiting for free CPUs, memory or GPUs" in message, message
    assert "estimated start 20" in message, message
    assert job["state"] == "PENDING" and job["reason"] == "Resources" and job["position"] == "1 of 1", job
    assert job["estimated_start"].startswith("20") and job["id"] in queued_jobs("alice")
    time.sleep(max(0.0, START_TIMEOUT + 3 - (time.monotonic() - t0)))
    (job,) = queued_jobs("alice").values()
    assert job["state"] == "PENDING", "the queued job was cancelled for waiting"
    assert hub.server("alice")["pending"] == "spawn"

    subprocess.run(["scancel", full_partition], check=True)
    hub.wait_ready("alice", timeout=60)
    assert hub.through_proxy("alice", hub.user_token("alice")).status_code == 200
    hub.stop("alice")


def test_a_queued_job_can_be_cancelled_from_the_progress_page(hub: HubProcess, full_partition: str):
    """The page's Stop button sends DELETE for the pending server: the job leaves the queue."""
    assert hub.start("bob").status_code in (201, 202)  # JupyterHub answers 201 after a refused spawn
    wait_for(lambda: queued_jobs("bob"), 30, "bob's job queued", every=0.25, fail=False)
    (job_id,) = queued_jobs("bob")
    assert queued_jobs("bob")[job_id]["state"] == "PENDING"
    assert hub.api("DELETE", "/users/bob/server").status_code in (202, 204)
    wait_for(
        lambda: queued_jobs("bob") == {} and hub.server("bob") is None,
        30,
        "bob's job left the queue and the hub forgot his server",
        every=0.25,
    )
    state = sh("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State").strip()
    assert state.startswith("CANCELLED"), state
    # Where the progress page leads after the stop (the form), the user reads what happened.
    session = hub.login("bob")
    page = session.get(f"{hub.url}/hub/spawn").text
    assert f"Your JupyterLab job {job_id} was cancelled before it started; it used no core-hours." in page
