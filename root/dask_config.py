"""The site's Dask defaults, written where every notebook server's Dask finds them.

dask-jobqueue reads ``jobqueue.slurm`` from Dask's config, which includes
``{sys.prefix}/etc/dask``, and Dask loads every YAML file there (preloads, job prologues):
so root writes ``jobqueue.yaml`` into the users' venv when installing (``aifactory-site
install-dask``), in a folder only root may change, and the hub only checks at start-up that
it says what the site file says.  ``SLURMCluster()`` with no arguments then submits to the
site's partition and QoS, with the kernel's Python, and serves its dashboard on a private Unix socket.
In a JupyterLab job it speaks TLS with credentials made for that job (job/launcher.py), and the
job script names the workers after the server's own job (DASK_JOBQUEUE__SLURM__NAME), which
is how the spawner finds and cancels them when that server ends.

Besides it, root writes ``aifactory-dask-env.pth`` into the venv's site-packages: every Python of
the venv then drops, on a host other than the login node, the login shell's scheduler address
that ``sbatch`` carried into a batch job (job/dask_env.py; issue 35, item 8). A YAML file of
Dask's cannot depend on the host it is read on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aifactory_workbench.hub.site import SiteConfig, SiteConfigError
from aifactory_workbench.job import WORKER_JOB_PREFIX
from aifactory_workbench.job.dask_env import PTH_LINE, PTH_NAME

#: Where schedulers started by users first open their dashboards: the lab/dashboard.py preload
#: then moves them to private Unix sockets (a port of loopback, any free one, until it does).
DASHBOARD_ADDRESS = "127.0.0.1:0"


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
                # Spill space in a folder of the worker job's own, made fresh on the node's scratch
                # (never a name another user could make first) and removed when the worker ends.
                "job-script-prologue": [
                    f'AIFW_PRIVATE=$(mktemp -d "{d.local_directory}/aifw-dask-$SLURM_JOB_ID.XXXXXXXXXX") || exit 1',
                    "trap 'rm -rf \"$AIFW_PRIVATE\"' EXIT",
                    "trap 'exit 143' TERM",
                    'export TMPDIR="$AIFW_PRIVATE"',
                ],
                "local-directory": "$AIFW_PRIVATE",
                # Logs: in a notebook server, the user's ~/.aifactory/dask-logs (the job script sets
                # log-directory); elsewhere SLURM's slurm-N.out where SLURMCluster is made.
                "job-extra-directives": directives + ["--no-requeue"],
                # The preload below moves every dashboard to a Unix socket its owner alone opens
                # (in a JupyterLab job, through her own server: lab/dashboard_proxy.py).
                "scheduler-options": {"dashboard_address": DASHBOARD_ADDRESS},
            }
        },
        # Every scheduler's and worker's dashboard answers on a Unix socket in a private folder,
        # never on a TCP port (issue 34); a scheduler started in a JupyterLab job notes its
        # dashboard for JupyterLab's Dask panel. (TLS: the job's own credentials, which
        # job/launcher.py makes and names in the job's environment.)
        "distributed": {
            "scheduler": {"preload": ["aifactory_workbench.lab.dashboard"]},
            "worker": {"preload": ["aifactory_workbench.lab.dashboard"]},
        },
    }


def dask_config_dir(site: SiteConfig) -> Path:
    return Path(site.singleuser.venv) / "etc" / "dask"


def site_packages(site: SiteConfig) -> list[Path]:
    """The users' venv's site-packages (none in a venv not made yet)."""
    return sorted(Path(site.singleuser.venv).glob("lib/python3*/site-packages"))


def write_login_env_pth(site: SiteConfig) -> bool:
    """As root at install: the .pth that leaves a login shell's Dask settings on the login node;
    whether one changed."""
    changed = False
    for folder in site_packages(site):
        path = folder / PTH_NAME
        if path.is_file() and path.read_text() == PTH_LINE:
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".aifactory-dask-env-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(PTH_LINE)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        changed = True
    return changed


def write_dask_config(site: SiteConfig, directory: Path | None = None) -> Path:
    """Write jobqueue.yaml (as root at install: the folder is then root's, mode 755)."""
    directory = directory or dask_config_dir(site)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "jobqueue.yaml"
    text = "# Written by aifactory-site install-dask from the site config (section dask).\n"
    # Written aside and renamed: notebooks starting now never read half a file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".jobqueue-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text + yaml.safe_dump(jobqueue_config(site), sort_keys=False))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def install_dask_config(site: SiteConfig) -> tuple[Path, bool]:
    """As root: write users' jobqueue.yaml into a folder only root may change; the path, and
    whether it changed."""
    directory = dask_config_dir(site)
    before = (directory / "jobqueue.yaml").read_text() if (directory / "jobqueue.yaml").is_file() else None
    path = write_dask_config(site, directory)
    os.chown(directory, 0, 0)
    os.chmod(directory, 0o755)
    pth_changed = write_login_env_pth(site)
    return path, path.read_text() != before or pth_changed


def check_dask_config(site: SiteConfig) -> None:
    """The hub starts only if what users' Dask reads is what the site file says."""
    path = dask_config_dir(site) / "jobqueue.yaml"
    try:
        installed = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        installed = f"unreadable ({e})"
    if installed != jobqueue_config(site):
        raise SiteConfigError(
            f"section 'dask': {path} does not say what the site file says; as root, run "
            f"aifactory-site install-dask {site.source} (users' Dask reads that folder, so only root writes it)"
        )
    for folder in site_packages(site):
        pth = folder / PTH_NAME
        if not pth.is_file() or pth.read_text() != PTH_LINE:
            raise SiteConfigError(
                f"section 'dask': {pth} is missing or outdated (a batch job submitted from a login shell would "
                f"take the login node's Dask address); as root, run aifactory-site install-dask {site.source}"
            )
