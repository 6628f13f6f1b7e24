"""A job that cannot start at once waits in the queue, says why, and is never cancelled just
for waiting: the start timeout counts only from the moment the job runs."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from .conftest import HubProcess, launch, queued_jobs, sh

START_TIMEOUT = 10


@pytest.fixture(scope="module")
def impatient_hub() -> Iterator[HubProcess]:
    hub = launch(hub={"start_timeout": START_TIMEOUT})
    yield hub
    hub.shutdown()


@pytest.fixture
def full_node() -> Iterator[str]:
    """Every idle core of the node taken by another job (root's), as on a busy cluster."""
    idle = sh("sinfo", "-h", "-n", "mn5-n01", "-o", "%C").strip().split("/")[1]  # alloc/idle/other/total
    job = sh("sbatch", "--parsable", "--job-name=aifw-test-filler", "--partition=gpp", "--qos=normal",
             f"--cpus-per-task={idle}", "--mem=1G", "--output=/dev/null", "--wrap", "sleep 900").strip()  # fmt: skip
    deadline = time.monotonic() + 30
    while sh("squeue", "-h", "-j", job, "-o", "%T").strip() != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sh("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING", "could not fill the node"
    yield job
    subprocess.run(["scancel", job], check=False)


def progress_messages(hub: HubProcess, user: str, seconds: float) -> list[str]:
    """The messages the spawn-pending page shows, read from the progress stream for a while."""
    messages, deadline = [], time.monotonic() + seconds
    try:
        with hub.api("GET", f"/users/{user}/server/progress", stream=True, timeout=(5, seconds)) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    messages.append(json.loads(line[5:]).get("message", ""))
                if time.monotonic() > deadline:
                    break
    except requests.RequestException:
        pass  # no new message before the read timeout
    return messages


@pytest.mark.slow
def test_a_queued_job_outlives_the_start_timeout_and_starts_when_the_node_frees(
    impatient_hub: HubProcess, full_node: str
):
    hub = impatient_hub
    t0 = time.monotonic()
    assert hub.start("alice").status_code == 202
    messages = progress_messages(hub, "alice", START_TIMEOUT + 2)
    queued = [m for m in messages if "is queued in gpp" in m]
    assert queued and "waiting for free CPUs, memory or GPUs" in queued[-1], messages
    assert "estimated start 20" in queued[-1], queued[-1]
    time.sleep(max(0.0, START_TIMEOUT + 3 - (time.monotonic() - t0)))
    (job,) = queued_jobs("alice").values()
    assert job["state"] == "PENDING", "the queued job was cancelled for waiting"
    assert hub.server("alice")["pending"] == "spawn"

    subprocess.run(["scancel", full_node], check=True)
    hub.wait_ready("alice", timeout=60)
    assert hub.through_proxy("alice", hub.user_token("alice")).status_code == 200
    hub.stop("alice")
