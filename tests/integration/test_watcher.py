"""One scheduler query per interval for all servers, counted where the hub calls SLURM."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import CLUSTER, POLL_INTERVAL, HubProcess, launch, queued_jobs, wait_for

CLUSTER_STATE = Path("/var/lib/aifactory-cluster")

SERVERS = [f"s{i:02d}" for i in range(20)]


@pytest.fixture(scope="module")
def busy_hub() -> Iterator[HubProcess]:
    hub = launch(
        hub={"named_servers_per_user": len(SERVERS)},
        # JupyterLab with its extensions peaks at about 330 MB while it starts (256M ran out).
        slurm={"qos": "normal", "memory": "512M"},
    )
    yield hub
    hub.shutdown()


@pytest.mark.slow
def test_twenty_servers_cost_one_squeue_per_interval(busy_hub: HubProcess):
    hub = busy_hub
    with ThreadPoolExecutor(len(SERVERS)) as pool:
        responses = list(pool.map(lambda s: hub.start("alice", server=s), SERVERS))
    assert all(r.status_code in (201, 202) for r in responses), [r.text for r in responses]

    def all_ready() -> dict | None:
        servers = hub.api("GET", "/users/alice").json()["servers"]
        return servers if all(servers.get(s, {}).get("ready") for s in SERVERS) else None

    servers = wait_for(all_ready, 240, "alice's servers ready", every=1, fail=False)
    servers = servers or hub.api("GET", "/users/alice").json()["servers"]
    not_ready = {s: hub.last_failure("alice", s) or "not ready" for s in SERVERS if not servers.get(s, {}).get("ready")}
    assert not_ready == {}, not_ready
    assert len([j for j in queued_jobs("alice").values() if j["state"] == "RUNNING"]) == len(SERVERS)

    before, t0 = hub.slurm_commands(), time.monotonic()
    time.sleep(5 * POLL_INTERVAL)
    after, elapsed = hub.slurm_commands(), time.monotonic() - t0
    intervals = elapsed / POLL_INTERVAL
    squeues = after.get("squeue", 0) - before.get("squeue", 0)
    # Stock batchspawner: one squeue per server per interval, i.e. about 20 * intervals.
    print(f"\n20 servers: {squeues:.0f} squeue calls in {intervals:.1f} poll intervals")
    assert 1 <= squeues <= intervals + 1, f"{squeues} squeue calls in {intervals:.1f} intervals"
    others = {c: after[c] - before.get(c, 0) for c in after if c != "squeue" and after[c] != before.get(c, 0)}
    assert others == {}, f"steady state ran other SLURM commands: {others}"

    with ThreadPoolExecutor(len(SERVERS)) as pool:
        list(pool.map(lambda s: hub.stop("alice", s), SERVERS))
    assert queued_jobs("alice") == {}


def stop_slurmctld() -> None:
    pid = (CLUSTER_STATE / "run" / "slurmctld.pid").read_text().strip()
    subprocess.run(["kill", pid], check=True)
    while subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0:
        time.sleep(0.2)


@pytest.mark.disruptive
@pytest.mark.slow
def test_servers_outlive_a_scheduler_outage_and_spawns_say_why(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    stop_slurmctld()
    try:
        time.sleep(4 * POLL_INTERVAL)
        assert hub.server("alice") is not None, "a server was removed because the scheduler did not answer"
        assert hub.through_proxy("alice", token).status_code == 200
        r = hub.start("bob")
        message = r.json().get("message", "") if r.status_code >= 400 else hub.last_failure("bob")
        assert "scheduler is unavailable" in message, message
    finally:
        subprocess.run(["bash", str(CLUSTER), "start"], check=True, capture_output=True)
    time.sleep(2 * POLL_INTERVAL)
    assert hub.server("alice") is not None and hub.through_proxy("alice", token).status_code == 200
    assert queued_jobs("bob") == {}
    hub.start_ready("bob")  # spawning works again once the scheduler is back


@pytest.mark.slow
def test_a_job_renamed_behind_the_hubs_back_is_still_followed_and_ends_with_its_server(clean: HubProcess):
    """A user renames their JupyterLab job (scontrol update name=...): the hub used to read it as
    gone and forget it while it kept its allocation (issue 11, hole 11)."""
    hub = clean
    hub.start_ready("bob")
    (job_id,) = queued_jobs("bob")
    renamed = ["sudo", "-u", "bob", "scontrol", "update", f"jobid={job_id}", "name=aifw-renamed"]
    subprocess.run(renamed, check=True, capture_output=True, cwd="/tmp")
    time.sleep(4 * POLL_INTERVAL)
    server = hub.server("bob")
    assert server is not None and server["ready"], "the hub forgot a running job"
    assert hub.through_proxy("bob", hub.user_token("bob")).status_code == 200
    hub.stop("bob")

    def job_state() -> str:
        sacct = ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"]
        return subprocess.run(sacct, capture_output=True, text=True).stdout

    wait_for(lambda: job_state().startswith("CANCELLED"), 30, f"job {job_id} CANCELLED", fail=False)
    state = job_state()
    assert state.startswith("CANCELLED"), state
