"""The mini supercomputer: SLURM's own tools work from a root shell, start/stop are idempotent."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import CLUSTER, HubProcess, queued_jobs, sh

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def daemon_pids() -> dict[str, str]:
    return {d: subprocess.run(["pgrep", "-x", d], capture_output=True, text=True).stdout.strip() for d in DAEMONS}


def cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), command], capture_output=True, text=True, timeout=300)


def test_the_site_looks_like_marenostrum():
    partitions = sh("sinfo", "-h", "-o", "%P|%G").split()
    assert "gpp*|gpu:2" in partitions and "acc|gpu:2" in partitions
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
    assert cluster("status").returncode != 0
    assert cluster("stop").returncode == 0  # stopping a stopped cluster is fine too
    restarted = cluster("start")
    assert restarted.returncode == 0, restarted.stderr
    assert sh("sinfo", "-h", "-n", "mn5-n01", "-o", "%T").strip() in {"idle", "mixed"}
