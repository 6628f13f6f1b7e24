"""The site's Dask defaults, written where every notebook server's Dask finds them.

dask-jobqueue reads ``jobqueue.slurm`` from Dask's config, which includes
``{sys.prefix}/etc/dask``: the hub writes ``jobqueue.yaml`` into the users' venv at
start-up, so ``SLURMCluster()`` with no arguments submits to the site's partition and QoS,
with the kernel's Python.  Inside a notebook server the job script names the workers after
the server's own job (DASK_JOBQUEUE__SLURM__NAME), which is how the spawner finds and
cancels them when that server ends.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from hub.site import SiteConfig
from spawners.jobscript import WORKER_JOB_PREFIX


def _memory_for_dask(slurm_memory: str) -> str:
    """SLURM's 2G is Dask's 2GiB."""
    return f"{slurm_memory[:-1]}{slurm_memory[-1]}iB"


def jobqueue_config(site: SiteConfig) -> dict[str, Any]:
    d = site.dask
    directives = [f"--qos={d.qos}"] if d.qos else []
    return {
        "jobqueue": {
            "slurm": {
                # In a notebook server the job script sets aifw-dask-<its job id> instead.
                "name": f"{WORKER_JOB_PREFIX}worker",
                "cores": d.cores,
                "processes": 1,
                "memory": _memory_for_dask(d.memory),
                "queue": d.partition,
                "walltime": d.walltime,
                "python": f"{site.singleuser.venv}/bin/python",
                "local-directory": d.local_directory,
                # Worker logs on the node's scratch, not as slurm-N.out files in the user's home.
                "job-extra-directives": directives + ["--no-requeue", "--output=/tmp/aifw-dask-%u-%j.log"],
            }
        }
    }


def write_dask_config(site: SiteConfig, directory: Path | None = None) -> Path:
    directory = directory or Path(site.singleuser.venv) / "etc" / "dask"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "jobqueue.yaml"
    text = "# Written by the hub from the site config (section dask); edits are overwritten.\n"
    # Written aside and renamed: notebooks starting now never read half a file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".jobqueue-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text + yaml.safe_dump(jobqueue_config(site), sort_keys=False))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
