"""Stock batchspawner 1.3.0, configured as a site would, for side-by-side benchmarks.

Everything but the spawner comes from the same site file as ours.  Only what JupyterHub 6
needs to run it at all is set: absolute commands (PATH is no longer passed to the job).  The
node names it is told resolve to the nodes' addresses (/etc/hosts, the mini cluster's DNS).
Its own /api/batchspawner handler is used.
The hub runs unprivileged, with sudo for submit and cancel only: stock's `sudo -u USER`
prefix moves into those two commands, and its squeue (one per server per poll, the load
being measured) runs as the hub user, which SLURM counts the same.
"""

from batchspawner.api import BatchSpawnerAPIHandler
from jupyterhub import apihandlers

from aifactory_workbench.hub.configure import configure
from aifactory_workbench.hub.site import load_site_config

site = load_site_config()
configure(c, site)  # noqa: F821 - `c` is provided by JupyterHub
bindir = f"{site.singleuser.venv}/bin"
spawner = c.MultiSlurmSpawner  # noqa: F821
c.JupyterHub.spawner_class = "batchspawner.MultiSlurmSpawner"  # noqa: F821
spawner.batchspawner_singleuser_cmd = f"{bindir}/batchspawner-singleuser"
spawner.cmd = [f"{bindir}/jupyterhub-singleuser"]
spawner.req_srun = ""
spawner.exec_prefix = ""
spawner.batch_submit_cmd = "sudo -n -u {username} sbatch --parsable"
spawner.batch_cancel_cmd = "sudo -n -u {username} scancel {job_id}"
spawner.req_partition = site.slurm.partition
spawner.req_qos = site.slurm.qos
spawner.req_nprocs = str(site.slurm.cpus)
spawner.req_memory = site.slurm.memory
spawner.req_runtime = site.slurm.walltime
# The same intervals and timeouts as ours (the site's settings go to WorkbenchSpawner only).
spawner.poll_interval = site.hub.poll_interval
spawner.http_timeout = int(site.hub.http_timeout)
spawner.start_timeout = int(site.hub.queue_timeout + site.hub.start_timeout)
apihandlers.default_handlers.append((r"/api/batchspawner", BatchSpawnerAPIHandler))
