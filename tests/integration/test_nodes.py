"""A cluster of several nodes: each server runs on a node of its partition and the proxy reaches
it across the cluster network; a Dask cluster spreads over both gpp nodes; a node that fails
ends only its own users' sessions, named as a node failure, and rejoins when it comes back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from .conftest import (
    CLUSTER,
    POLL_INTERVAL,
    HubProcess,
    cluster_nodes,
    execute_in_kernel,
    job_node,
    queued_jobs,
    sh,
    wait_for,
)
from .jobs import home_page, wait_gone, wait_state


def node_of(user: str) -> str:
    (job_id,) = queued_jobs(user)
    return job_node(job_id)


def proxy_target(hub: HubProcess, user: str) -> str:
    """Where the proxy sends the user's requests (JupyterHub's own record of its routes)."""
    routes = hub.api("GET", "/proxy").json().values()
    (target,) = [r["target"] for r in routes if r.get("data", {}).get("user") == user]
    return target


@pytest.mark.slow
def test_each_server_runs_on_its_partitions_nodes_and_is_reached_across_the_network(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    hub.start_ready("bob")
    hub.start_ready("instructor", {"partition": "acc", "gpus": 1})
    nodes = cluster_nodes()
    placed = {user: node_of(user) for user in ("alice", "bob", "instructor")}
    # gpp spreads sessions over its nodes; the GPU session lands on the acc node.
    assert {nodes[placed["alice"]].partition, nodes[placed["bob"]].partition} == {"gpp"}, placed
    assert placed["alice"] != placed["bob"], placed
    assert placed["instructor"] == "mn5-a01", placed
    (gpu_job,) = queued_jobs("instructor")
    assert "GRES=gpu:1(IDX:" in sh("scontrol", "show", "job", "-d", gpu_job), "the acc server got no GPU"
    for user, node in placed.items():
        # The proxy reaches each server at its node's address, across the bridge, and it answers.
        assert proxy_target(hub, user).startswith(f"http://{nodes[node].address}:"), (user, proxy_target(hub, user))
        assert hub.through_proxy(user, hub.user_token(user)).status_code == 200
    # The kernel runs on the node, with the node's name and the GPU SLURM gave the job.
    code = "import os, socket\nprint('ON', socket.gethostname(), os.environ.get('SLURM_GPUS_ON_NODE'))"
    assert "ON mn5-a01 1" in execute_in_kernel(hub, "instructor", hub.user_token("instructor"), code)


DASK_OVER_TWO_NODES = """
import socket
import dask.array as da
from dask.distributed import Client, get_task_stream
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster(cores=2)
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=180)
print("SCHEDULER", cluster.scheduler_address)
workers = client.scheduler_info()["workers"]
print("HOSTS", *sorted({w["host"] for w in workers.values()}))
print("NAMES", *sorted(set(client.run(socket.gethostname).values())))
x = da.random.RandomState(0).random_sample((4000, 4000), chunks=(500, 500))
with get_task_stream(client) as stream:
    mean = (x + x.T).mean().compute()
print("MEAN", round(float(mean), 2))
print("COMPUTED_ON", *sorted({workers[t["worker"]]["host"] for t in stream.data}))
client.close()
cluster.close()
"""


def printed(output: str, label: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith(label + " ")]
    return line.split()[1:]


@pytest.mark.slow
def test_a_dask_cluster_spreads_over_both_gpp_nodes_in_one_computation(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    nodes = cluster_nodes()
    gpp = sorted(n.address for n in nodes.values() if n.partition == "gpp")
    output = execute_in_kernel(hub, "alice", hub.user_token("alice"), DASK_OVER_TWO_NODES)
    # The scheduler runs in JupyterLab's job, on its node's address (TLS, issue 21); the workers reach it across
    # the cluster network from both gpp nodes, and one computation ran tasks on both.
    assert printed(output, "SCHEDULER")[0].startswith(f"tls://{nodes[node_of('alice')].address}:"), output
    assert printed(output, "HOSTS") == gpp, output
    assert printed(output, "NAMES") == sorted(n.name for n in nodes.values() if n.partition == "gpp"), output
    assert printed(output, "MEAN") == ["1.0"], output
    assert printed(output, "COMPUTED_ON") == gpp, output


def cluster_command(*argv: str) -> None:
    result = subprocess.run(["bash", str(CLUSTER), *argv], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def failed_node() -> Iterator[list[str]]:
    """The nodes a test fails; each is restored afterwards, whatever happened."""
    failed: list[str] = []
    yield failed
    for node in failed:
        subprocess.run(["bash", str(CLUSTER), "restore-node", node], capture_output=True, timeout=180)


@pytest.mark.slow
@pytest.mark.disruptive
def test_a_node_failure_ends_only_its_sessions_is_named_and_the_node_rejoins(clean: HubProcess, failed_node: list[str]):
    hub = clean
    hub.start_ready("alice")
    hub.start_ready("bob")
    (alice_job,) = queued_jobs("alice")
    lost, other = node_of("alice"), node_of("bob")
    assert lost != other

    failed_node.append(lost)
    cluster_command("fail-node", lost)  # its slurmd killed and its link cut
    t0 = time.monotonic()
    assert wait_state(alice_job, {"NODE_FAIL"}, timeout=120) == "NODE_FAIL"
    seconds = time.monotonic() - t0
    noticed = wait_gone(hub, "alice", 10 * POLL_INTERVAL)  # the server on the failed node
    print(f"node failure: NODE_FAIL after {seconds:.0f} s, the hub noticed {noticed:.1f} s later")
    state = sh("scontrol", "show", "node", lost, "-o").split("State=", 1)[1].split()[0]
    assert "DOWN" in state.split("+") and "NOT_RESPONDING" in state.split("+"), state
    home = home_page(hub, "alice")
    assert f"Your JupyterLab job {alice_job} has ended: its compute node failed" in home, home[-3000:]
    # bob's session on the other node goes on.
    assert hub.server("bob") is not None and hub.server("bob")["ready"]
    assert hub.through_proxy("bob", hub.user_token("bob")).status_code == 200

    cluster_command("restore-node", lost)
    failed_node.remove(lost)
    assert sh("sinfo", "-h", "-n", lost, "-o", "%T").strip() in {"idle", "mixed"}
    # What still ran of alice's job there (cut off, not dead) is ended by SLURM once the node's
    # slurmd reports it: at a registration, which came 100 s after the node's return in one run.
    lab = ["pgrep", "-u", "alice", "-f", "jupyterhub-singleuser"]
    wait_for(
        lambda: subprocess.run(lab, capture_output=True).returncode != 0,
        240,
        "alice's JupyterLab outlived its job on the restored node",
    )
    # The node takes work again: alice starts anew.
    hub.start_ready("alice")
    assert hub.through_proxy("alice", hub.user_token("alice")).status_code == 200
