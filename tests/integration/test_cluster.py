"""The mini supercomputer: SLURM's own tools work from a root shell, start/stop are idempotent."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import CLUSTER, HubProcess, cluster_nodes, on_node, queued_jobs, sh

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def daemon_pids() -> dict[str, str]:
    return {d: subprocess.run(["pgrep", "-x", d], capture_output=True, text=True).stdout.strip() for d in DAEMONS}


def cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=300)


def test_the_site_looks_like_marenostrum():
    """Three compute nodes, each its own machine on the cluster network: two in gpp without
    GPUs, one in acc with two; the login node is where slurmctld runs."""
    rows = {line.split("|")[0]: line.split("|")[1:] for line in sh("sinfo", "-N", "-h", "-o", "%N|%P|%G|%T").split()}
    assert {name: row[:2] for name, row in rows.items()} == {
        "mn5-g01": ["gpp*", "(null)"],
        "mn5-g02": ["gpp*", "(null)"],
        "mn5-a01": ["acc", "gpu:2"],
    }
    assert all(row[2] in {"idle", "mixed", "allocated"} for row in rows.values()), rows  # all three up
    assert sorted(rows) == sorted(n.name for n in cluster_nodes().values() if n.partition != "-")
    for node in cluster_nodes().values():
        if node.partition == "-":
            controller = f"{sh('hostname', '-s').strip()}({node.address})"
            assert re.search(rf"SlurmctldHost\[0\] += {re.escape(controller)}", sh("scontrol", "show", "config"))
            continue
        assert sh(*on_node(node.name, "hostname")).strip() == node.name
        assert node.address in sh(*on_node(node.name, "hostname", "-I")).split()
        # A node's only way off the cluster network leads nowhere (asked of the routing table:
        # nothing is sent).
        assert " dev nowhere " in sh(*on_node(node.name, "ip", "route", "get", "192.0.2.1"))
    # gpp has no GPU to give: its nodes have none (SLURM says so, not a QoS rule).
    refused = subprocess.run(
        ["sbatch", "--test-only", "-p", "gpp", "--gres=gpu:1", "--wrap", "true"], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "Requested node configuration is not available" in refused.stderr
    assert "interactive" in sh("sacctmgr", "-n", "-P", "show", "qos", "format=name").split()
    assoc = sh("sacctmgr", "-n", "-P", "show", "assoc", "format=account,user", "where", "user=alice,bob,instructor")
    assert set(assoc.split()) == {"ehpc01|alice", "ehpc02|bob", "ehpc01|instructor", "ehpc02|instructor"}


@pytest.fixture
def new_user():
    """A user an admin adds the usual way: useradd, then sacctmgr, nothing of ours."""
    name = "dana"
    subprocess.run(["useradd", "-m", "-G", "aifactory-users", name], check=True)
    subprocess.run(["sacctmgr", "-i", "add", "user", name, "account=ehpc02"], check=True, capture_output=True)
    yield name
    subprocess.run(["scancel", "-u", name], check=False)
    subprocess.run(["sacctmgr", "-i", "delete", "user", name], check=False, capture_output=True)
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


@pytest.mark.slow
def test_a_user_added_by_an_admin_is_picked_up_without_config_changes(clean: HubProcess, new_user: str):
    clean.start_ready(new_user)
    (job,) = queued_jobs(new_user).values()
    assert job["account"] == "ehpc02" and job["state"] == "RUNNING"
    clean.stop(new_user)


@pytest.mark.disruptive
@pytest.mark.slow
def test_start_twice_is_harmless_and_stop_leaves_no_daemon():
    before = daemon_pids()
    assert all(before.values()), before
    again = cluster("start")
    assert again.returncode == 0, again.stderr
    assert daemon_pids() == before, "a second start restarted daemons"
    # A running job must not outlive the cluster (its slurmstepd would).
    sh("sudo", "-u", "alice", "sbatch", "--job-name=aifw-test-sleeper", "-o", "/dev/null", "--wrap", "sleep 600")
    stopped = cluster("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not any(daemon_pids().values()), daemon_pids()
    assert subprocess.run(["pgrep", "-u", "alice", "-f", "sleep 600"]).returncode == 1, "a job outlived stop"
    assert not Path("/run/netns/mn5-g01").exists(), "stop left the node's network namespace"
    assert cluster("status").returncode != 0
    assert cluster("stop").returncode == 0  # stopping a stopped cluster is fine too
    restarted = cluster("start")
    assert restarted.returncode == 0, restarted.stderr
    assert set(sh("sinfo", "-N", "-h", "-o", "%T").split()) <= {"idle", "mixed"}
