"""Issue 35, item 8: Dask in a batch job submitted from a login shell, the most common HPC pattern.

A login shell (/etc/profile.d/aifactory-dask.sh) sets the login node's scheduler address, and
``sbatch`` exports the shell's environment into the job (``--export=ALL``): ``SLURMCluster()`` on
the compute node then tried to bind the login node's address, ``OSError: [Errno 99] Cannot assign
requested address``. Now the venv's Python drops that address on any other host (job/dask_env.py)."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import LOGIN_NODE, VENV, cluster_nodes

JOB_NAME = "aifw-test-dask-batch"

#: alice's batch script, as she writes one: Python from the site's venv starts a SLURMCluster.
JOB_SCRIPT = f"""#!/bin/bash
#SBATCH --job-name={JOB_NAME}
#SBATCH --time=00:10:00
#SBATCH --output=job.out
echo "NODE $(uname -n)"
{VENV}/bin/python - <<'EOF'
import getpass
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print("SCHEDULER", cluster.scheduler_address, flush=True)
print("RESULT", client.submit(sum, range(10)).result(), client.run_on_scheduler(getpass.getuser), flush=True)
client.close()
cluster.close()
EOF
"""

#: In alice's login shell: what the profile set, then the script submitted as `sbatch job.sh`,
#: waited for, and its output.
LOGIN_SHELL = """
echo "LOGIN_HOST ${DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST:-unset}"
d=$(mktemp -d "$HOME/.aifw-test-dask-batch.XXXXXX") && cd "$d" || exit 1
cat > job.sh
sbatch --wait job.sh; rc=$?
cat job.out
cd / && rm -rf "$d"
echo "SBATCH_RC $rc"
"""


def printed(output: str, label: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith(label + " ")]
    return line.split()[1:]


@pytest.mark.slow
def test_a_batch_job_submitted_from_a_login_shell_gets_its_dask_worker_and_its_result():
    try:
        run = subprocess.run(
            ["runuser", "-l", "alice", "-c", LOGIN_SHELL],
            input=JOB_SCRIPT,
            capture_output=True,
            text=True,
            timeout=420,
        )
    finally:
        subprocess.run(["scancel", "-u", "alice", "--name", JOB_NAME], check=False)
        subprocess.run(["scancel", "-u", "alice", "--name", "aifw-dask-worker"], check=False)
    output = run.stdout + run.stderr
    # The login shell had the login node's address (what sbatch carried into the job) ...
    assert printed(output, "LOGIN_HOST")[0].startswith("10.77.0."), output[-3000:]
    # ... and the job, on a compute node, got its worker and its result.
    assert printed(output, "SBATCH_RC") == ["0"], output[-3000:]
    assert printed(output, "RESULT") == ["45", "alice"], output[-3000:]
    node = printed(output, "NODE")[0]
    assert node != LOGIN_NODE.name and node in cluster_nodes(), output[-3000:]
    # Its scheduler listened on the job's node, and spoke TLS with alice's login credentials
    # (on the shared home), as her login-node clusters do.
    scheduler = printed(output, "SCHEDULER")[0]
    assert scheduler.startswith(f"tls://{cluster_nodes()[node].address}:"), output[-3000:]
