"""One import for scientists: Dask workers as SLURM jobs, with the site's defaults.

    from aifactory_workbench.lab.notebook import start_cluster
    client, cluster = start_cluster()          # adaptive, 1 to 4 workers

Workers go to the partition, QoS and account the site configured (jobqueue.yaml), run the
kernel's own Python, and never outlive the notebook: their walltime is capped at what the
notebook server's job has left, and they are cancelled with it.
"""

from __future__ import annotations

import os
from typing import Any

from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.values import format_duration, parse_duration

MARGIN_SECONDS = 120  # leave the workers' jobs a little before the notebook's ends


def capped_walltime(wanted: str, time_left: int | None) -> str:
    """The workers' walltime: what was wanted, but no longer than the notebook has left."""
    wanted_seconds = parse_duration(wanted)
    if time_left is None or wanted_seconds is None:
        return wanted
    return format_duration(max(60, min(wanted_seconds, time_left - MARGIN_SECONDS)))


def worker_walltime(job_id: str, wanted: str) -> str:
    """The workers' walltime for a notebook in job ``job_id``, from squeue's time left now: an
    extension of the session (its Extend button) gives the next workers more."""
    return capped_walltime(wanted, Slurm().time_left(job_id))


def start_cluster(minimum: int = 1, maximum: int = 4, adapt: bool = True, **options: Any):
    """A Client and its SLURMCluster; ``options`` override jobqueue.yaml (e.g. cores=4)."""
    import dask.config
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    job_id = os.environ.get("SLURM_JOB_ID")
    if job_id and "walltime" not in options:
        wanted = dask.config.get("jobqueue.slurm.walltime")
        options["walltime"] = worker_walltime(job_id, wanted)
    cluster = SLURMCluster(**options)
    if adapt:
        cluster.adapt(minimum=minimum, maximum=maximum)
    else:
        cluster.scale(maximum)
    return Client(cluster), cluster
