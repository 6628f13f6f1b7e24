"""The idle culler (jupyterhub-idle-culler as a hub service) with short timeouts: an idle server
is stopped and its job cancelled, and its user is told why; a server whose kernel is busy, or
whose Dask cluster has workers, is kept although nobody clicks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .conftest import HubProcess, execute_in_kernel, launch, queued_jobs, sh, wait_for

IDLE_TIMEOUT = 40
WORKERS = """
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print("workers", len(client.scheduler_info()["workers"]))
"""


@pytest.fixture(scope="module")
def culling_hub() -> Iterator[HubProcess]:
    hub = launch(culler={"idle_timeout": IDLE_TIMEOUT, "every": 5})
    yield hub
    hub.shutdown()


@pytest.mark.slow
def test_an_idle_server_is_stopped_and_a_busy_one_is_kept(culling_hub: HubProcess):
    hub = culling_hub
    for user in ("alice", "bob", "instructor"):
        hub.start_ready(user)
    try:
        # bob's kernel computes for longer than the timeout; instructor's Dask cluster has a worker.
        execute_in_kernel(hub, "bob", hub.user_token("bob"), "import time; time.sleep(600)", wait=False)
        out = execute_in_kernel(hub, "instructor", hub.user_token("instructor"), WORKERS)
        assert "workers 1" in out
        wait_for(lambda: hub.server("alice") is None, 4 * IDLE_TIMEOUT, "the idle server was not stopped", every=2)
        assert queued_jobs("alice") == {}
        home = hub.login("alice").get(f"{hub.url}/hub/home", timeout=30).text
        assert "was stopped after 40 seconds without use" in home
        # Twice the timeout since their last click: still there.
        time.sleep(IDLE_TIMEOUT)
        assert hub.server("bob") is not None and hub.server("bob")["ready"]
        assert hub.server("instructor") is not None and hub.server("instructor")["ready"]
        assert any(n.startswith("aifw-dask-") for n in sh("squeue", "-h", "-u", "instructor", "-o", "%j").split())
    finally:
        for user in ("alice", "bob", "instructor"):
            hub.stop(user)
