"""Hub restarts: the hub's state survives a crash, and jobs that ended meanwhile are noticed."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.harness import postgres_database

from .conftest import HubProcess, cluster_nodes, job_node, launch, partition_nodes, queued_jobs, sh, wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def own_hub(request) -> Iterator[HubProcess]:
    """Each restart test runs on the embedded database and on PostgreSQL, the production one."""
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(postgres_database()) if request.param == "postgresql" else ""
        hub = launch(hub={"db_url": db_url})
        stack.callback(hub.shutdown)
        yield hub


@pytest.mark.slow
def test_a_job_that_ended_while_the_hub_was_down_is_cleaned_up_at_restart(own_hub: HubProcess):
    hub = own_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    hub.kill_and_restart(between=lambda: subprocess.run(["scancel", job_id], check=True))
    t0 = time.monotonic()
    wait_for(lambda: hub.server("alice") is None, 60, "the hub still lists alice's ended server")
    assert time.monotonic() - t0 < 30, "the hub waited for a server whose job had ended"
    home = hub.login("alice", "alice-aif").get(f"{hub.url}/hub/home", timeout=30).text
    assert f"Your JupyterLab job {job_id} has ended: it was cancelled" in home


@pytest.mark.slow
def test_running_servers_on_every_node_survive_a_hub_crash(own_hub: HubProcess):
    """Servers on all three compute nodes (two gpp, one acc) are reached again after kill -9."""
    hub = own_hub
    users = {"alice": None, "bob": None, "instructor": {"partition": "acc", "gpus": 1}}
    for user, options in users.items():
        hub.start_ready(user, options)
    jobs = {user: next(iter(queued_jobs(user))) for user in users}
    assert sorted(job_node(job) for job in jobs.values()) == sorted(
        n for n, node in cluster_nodes().items() if node.is_compute
    )
    hub.kill_and_restart()
    for user, job_id in jobs.items():
        assert queued_jobs(user)[job_id]["state"] == "RUNNING", f"the restart cancelled {user}'s job"
        hub.wait_ready(user, timeout=60)
        assert hub.through_proxy(user, hub.user_token(user)).status_code == 200
    for user in users:
        hub.stop(user)


@pytest.mark.slow
def test_a_crash_loses_neither_a_running_nor_a_queued_server(own_hub: HubProcess):
    """kill -9 while bob's server runs and alice's job waits for a full partition: after the restart
    both are still tracked, nothing was cancelled, and alice lands in JupyterLab once it starts."""
    hub = own_hub
    hub.start_ready("bob")  # bob's server first, then every other core of gpp is taken
    (bob_job,) = queued_jobs("bob")
    node, others = job_node(bob_job), [n.name for n in partition_nodes("gpp")]
    others.remove(node)
    fill = [
        "sbatch",
        "--parsable",
        "--job-name=aifw-test-filler",
        "--partition=gpp",
        "--qos=normal",
        "--mem=1G",
        "--output=/dev/null",
        "--wrap",
        "sleep 900",
    ]
    fillers = [sh(*fill, f"--nodelist={node}", f"--cpus-per-task={cluster_nodes()[node].cores - 1}").strip()]
    fillers += [sh(*fill, f"--nodelist={','.join(others)}", f"--nodes={len(others)}", "--exclusive").strip()]
    try:
        filling = ",".join(fillers)
        wait_for(
            lambda: sh("squeue", "-h", "-j", filling, "-o", "%T").split() == ["RUNNING"] * 2, 60, "could not fill gpp"
        )
        assert hub.start("alice").status_code == 202
        wait_for(lambda: queued_jobs("alice"), 30, "alice's job queued", every=0.25, fail=False)
        (alice_job,) = queued_jobs("alice")
        assert queued_jobs("alice")[alice_job]["state"] == "PENDING"

        hub.kill_and_restart()
        time.sleep(3 * 2)  # several poll intervals of the test hub
        assert f"Job {alice_job} of alice was starting when the hub stopped" in hub.log.read_text()
        assert queued_jobs("alice")[alice_job]["state"] == "PENDING", "the restart cancelled the queued job"
        assert queued_jobs("bob")[bob_job]["state"] == "RUNNING", "the restart cancelled the running job"
        assert hub.server("alice") is not None, "the hub forgot the queued server"
        hub.wait_ready("bob", timeout=60)
        assert hub.through_proxy("bob", hub.user_token("bob")).status_code == 200
    finally:
        subprocess.run(["scancel", *fillers], check=True)
    hub.wait_ready("alice", timeout=90)
    token = hub.user_token("alice")
    wait_for(
        lambda: hub.through_proxy("alice", token).status_code == 200, 30, "alice's server answers through the proxy"
    )
    assert set(queued_jobs()) == {alice_job, bob_job}
    states = sh("sacct", "-n", "-X", "-P", "-j", f"{alice_job},{bob_job}", "-o", "State").split()
    assert states == ["RUNNING", "RUNNING"], states
    hub.stop("alice")
    hub.stop("bob")
