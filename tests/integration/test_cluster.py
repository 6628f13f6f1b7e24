"""The mini supercomputer: SLURM's own tools work from a root shell, start/stop are idempotent."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import CLUSTER, CONTROLLER, LOGIN_NODE, VENV, HubProcess, cluster_nodes, on_node, queued_jobs, sh

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def daemon_pids() -> dict[str, str]:
    return {d: subprocess.run(["pgrep", "-x", d], capture_output=True, text=True).stdout.strip() for d in DAEMONS}


def cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=300)


def test_the_site_looks_like_marenostrum():
    """Three compute nodes, each its own machine on the cluster network: two in gpp without
    GPUs, one in acc with two; slurmctld on a host of its own, not the login node's."""
    rows = {line.split("|")[0]: line.split("|")[1:] for line in sh("sinfo", "-N", "-h", "-o", "%N|%P|%G|%T").split()}
    assert {name: row[:2] for name, row in rows.items()} == {
        "mn5-g01": ["gpp*", "(null)"],
        "mn5-g02": ["gpp*", "(null)"],
        "mn5-a01": ["acc", "gpu:2"],
    }
    assert all(row[2] in {"idle", "mixed", "allocated"} for row in rows.values()), rows  # all three up
    assert sorted(rows) == sorted(n.name for n in cluster_nodes().values() if n.is_compute)
    controller = f"{CONTROLLER.name}({CONTROLLER.address})"
    assert re.search(rf"SlurmctldHost\[0\] += {re.escape(controller)}", sh("scontrol", "show", "config"))
    for node in cluster_nodes().values():
        if node == LOGIN_NODE:
            continue
        assert sh(*on_node(node.name, "hostname")).strip() == node.name
        assert node.address in sh(*on_node(node.name, "hostname", "-I")).split()
        # A machine's only way off the cluster network leads nowhere (asked of the routing table:
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


def pids_of(name: str) -> list[str]:
    return subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()


def namespace(pid: str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_the_hubs_host_is_a_slurm_client_apart_from_the_controller():
    """The site's shape (issue 35): the login node, where the hub runs, is not slurmctld's host. It
    has what a SLURM client needs (slurm.conf naming the controller, munge's key and a munged of
    its own) and nothing of the controller's: no database password, no MariaDB socket; slurmctld,
    slurmdbd and MariaDB run in the controller's namespaces, reached across the cluster network.
    The users' software is read-only on the compute nodes, even to root."""
    here = {kind: namespace("self", kind) for kind in ("net", "mnt")}
    for daemon in ("slurmctld", "slurmdbd", "mariadbd"):
        (pid,) = pids_of(daemon)
        assert {kind: namespace(pid, kind) for kind in here} != here, f"{daemon} runs on the hub's host"
        assert namespace(pid, "net") == namespace(pids_of("slurmctld")[0], "net"), (
            f"{daemon} is not on the controller's host"
        )
    assert sh(*on_node(CONTROLLER.name, "hostname")).strip() == CONTROLLER.name
    assert "is UP" in sh("scontrol", "ping") and CONTROLLER.name in sh("scontrol", "ping")
    # The database's password is on the controller's host alone; its socket is not on the hub's.
    assert not Path("/etc/slurm/slurmdbd.conf").exists()
    assert "StoragePass=" in sh(*on_node(CONTROLLER.name, "cat", "/etc/slurm/slurmdbd.conf"))
    assert not Path("/run/mysqld/mysqld.sock").exists()
    # Two munged, one per host, each with its own socket: a credential made on the hub's host is
    # accepted by the controller (the same key), as SLURM's commands from the hub show.
    munged = {namespace(pid, "mnt") for pid in pids_of("munged")}
    assert len(munged) >= 2 and here["mnt"] in munged, munged
    made = subprocess.run(["munge", "-n"], capture_output=True, check=True).stdout
    decoded = subprocess.run(on_node(CONTROLLER.name, "unmunge"), input=made, capture_output=True)
    assert decoded.returncode == 0, decoded.stderr
    # The users' stack: read-only on every compute node, root's writes refused there.
    for node in (n for n in cluster_nodes().values() if n.is_compute):
        wrote = subprocess.run(
            on_node(node.name, "touch", str(VENV / "written-by-a-node")), capture_output=True, text=True
        )
        assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr, (node.name, wrote.stderr)
    assert not (VENV / "written-by-a-node").exists()


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
