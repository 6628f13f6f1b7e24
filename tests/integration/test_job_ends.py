"""Jobs that end under faults: preempted, out of memory. The hub notices within a poll interval,
and the user's next page names the reason (from ``sacct``) with a relaunch button. (Walltime and
an admin's ``scancel``: test_spawn.py; a node failure: test_nodes.py.)"""

from __future__ import annotations

import subprocess

import pytest

from .conftest import POLL_INTERVAL, HubProcess, execute_in_kernel, job_node, queued_jobs, sh
from .jobs import home_page, wait_gone, wait_state


@pytest.mark.slow
def test_a_preempted_server_is_named_preempted(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    node = job_node(job_id)
    cores = sh("sinfo", "-h", "-n", node, "-o", "%C").strip().split("/")[3]
    urgent = sh(
        "sbatch",
        "--parsable",
        "--job-name=aifw-test-urgent",
        "--qos=urgent",
        f"--nodelist={node}",
        f"--cpus-per-task={cores}",
        "--mem=1G",
        "--output=/dev/null",
        "--wrap",
        "sleep 30",
    ).strip()
    try:
        assert wait_state(job_id, {"PREEMPTED"}) == "PREEMPTED"
        assert wait_gone(hub, "alice", 10 * POLL_INTERVAL) < 5 * POLL_INTERVAL
    finally:
        subprocess.run(["scancel", urgent], check=False)
    home = home_page(hub, "alice")
    assert f"Your JupyterLab job {job_id} has ended: it was preempted by a higher-priority job." in home
    assert 'href="spawn">Start it again</a>' in home


@pytest.mark.slow
def test_a_server_out_of_memory_is_named_with_what_it_used(clean: HubProcess):
    hub = clean
    hub.start_ready("bob", {"memory": "300M"})
    (job_id,) = queued_jobs("bob")
    code = "x = bytearray(700 * 1024 * 1024)\nimport time\ntime.sleep(120)\n"
    with pytest.raises(Exception):  # noqa: B017 - the kernel dies with its job; how it fails does not matter
        execute_in_kernel(hub, "bob", hub.user_token("bob"), code, timeout=90)
    assert wait_state(job_id, {"FAILED", "OUT_OF_MEMORY"}) in {"FAILED", "OUT_OF_MEMORY"}
    wait_gone(hub, "bob", 10 * POLL_INTERVAL)
    home = home_page(hub, "bob")
    assert f"Your JupyterLab job {job_id} has ended: it ran out of memory: it used " in home, home[-3000:]
    assert "of the 300 MB it asked for. Ask for more memory when you start it again." in home
