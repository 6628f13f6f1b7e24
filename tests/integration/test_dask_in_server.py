"""Inside a spawned JupyterLab: SLURMCluster() with no arguments, the dashboard through the
hub, and worker jobs that end with the server. Code runs in a real kernel of the server,
over the Jupyter websocket, with the user's token."""

from __future__ import annotations

import time

import pytest

from .conftest import POLL_INTERVAL, HubProcess, execute_in_kernel, sh, wait_for

CODE = """
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print("LINK", client.dashboard_link)
"""

#: Issue 21, hole 8: what the user makes in the job (here a file in the home) is theirs alone.
UMASK = """
import os, stat
probe = os.path.expanduser("~/.aifw-umask-probe")
open(probe, "w").close()
print("MODE", oct(stat.S_IMODE(os.stat(probe).st_mode)))
os.unlink(probe)
"""


DATAFRAME = """
import pandas as pd
import dask.dataframe as dd
df = dd.from_pandas(pd.DataFrame({"key": list("abc") * 20, "value": [1, 2, 3] * 20}), npartitions=4)
groups = df.groupby("key")["value"].sum().compute()
workers = client.run(lambda: 1)
arrow = set(client.run(lambda: __import__("pyarrow").__version__).values())
print("groups", {k: int(v) for k, v in sorted(groups.items())}, f"on {len(workers)} worker(s), arrow", *arrow)
"""


def worker_jobs(user: str) -> list[list[str]]:
    lines = sh("squeue", "-h", "-u", user, "-o", "%i|%j|%u|%a|%T").splitlines()
    return [line.split("|") for line in lines if line.split("|")[1].startswith("aifw-dask-")]


@pytest.mark.slow
def test_slurmcluster_dashboard_and_cleanup_inside_a_server(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    server_job = sh("squeue", "-h", "-u", "alice", "--name", "aifw-test-jupyterlab", "-o", "%i").strip()

    # The server offers the site's kernels only (no stock "Python 3 (ipykernel)" beside them).
    specs = hub.through_proxy("alice", token, "api/kernelspecs").json()
    assert (
        set(specs["kernelspecs"]) == {"aifactory", "aifactory-climate", "aifactory-acc"}
        and specs["default"] == "aifactory"
    )
    output = execute_in_kernel(hub, "alice", token, CODE + DATAFRAME + UMASK)
    (job,) = worker_jobs("alice")
    assert job[1] == f"aifw-dask-{server_job}" and job[2] == "alice" and job[4] == "RUNNING"
    assert job[3] == sh("sacctmgr", "-n", "-P", "show", "user", "alice", "format=defaultaccount").strip()

    # A dataframe groupby (pandas with pyarrow) computed on the SLURM worker.
    assert "groups {'a': 20, 'b': 40, 'c': 60} on 1 worker(s), arrow" in output, output

    assert "MODE 0o600" in output, output  # umask 077 in the job

    link = output.split("LINK ", 1)[1].split()[0]
    assert link.startswith("/user/alice/aifactory/dask/") and link.endswith("/status"), link  # lab/dashboard_proxy.py
    assert hub.get(link, hub.user_token("alice")).status_code == 200
    assert hub.get(link, hub.user_token("bob")).status_code == 403

    t0 = time.monotonic()
    hub.stop("alice")
    left = max(0.0, 2 * POLL_INTERVAL - (time.monotonic() - t0))  # two poll intervals from the stop
    wait_for(lambda: worker_jobs("alice") == [], left, "Dask workers outlived their notebook server", every=0.2)
