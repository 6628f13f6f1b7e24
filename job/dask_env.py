"""A login shell's Dask settings stay on the login node (issue 35, item 8).

``/etc/profile.d/aifactory-dask.sh`` gives a login shell the scheduler address of the login node
(``DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST``: where compute nodes reach it). ``sbatch`` and
``srun`` export the submitting shell's whole environment (``--export=ALL``, their default), so
``SLURMCluster()`` in a batch job submitted from that shell tried to bind the login node's
address on a compute node: ``OSError: [Errno 99] Cannot assign requested address``.

So the profile script names the values that hold on its own host only and that host:
``AIFACTORY_LOGIN_DASK_HOST`` (the login node's host name) and ``AIFACTORY_LOGIN_DASK_VARS``
(the names, space-separated). Every Python of the users' venv (and of environments built over
it, which read its ``.pth`` files) runs :func:`leave_login_settings` when it starts, before
anything imports Dask (``aifactory-dask-env.pth``, which ``aifactory-site install`` writes into
the venv's site-packages: root/dask_config.py): on another host it removes them from its
environment, and so from what it starts. Dask then chooses the node's own address, as in any job.

The profile's TLS credentials (``~/.aifactory/dask-tls/login``, on the shared home) and scratch
folder hold on every node, and stay: a batch job's cluster speaks TLS with them.

Standard library only: it runs at every start of Python where a login shell's settings are set.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: The host name of the login node whose settings these are (``uname -n`` there).
HOST_ENV = "AIFACTORY_LOGIN_DASK_HOST"
#: The names of the settings that hold on that host only, space-separated.
VARS_ENV = "AIFACTORY_LOGIN_DASK_VARS"
#: Only Dask's own settings are ever removed, whatever a shell put in the list.
DASK_PREFIX = "DASK_"

#: The line of the venv's ``.pth`` file: Python's ``site`` runs it at start-up. It imports this
#: module only where a login shell's settings come from another host (a job's environment).
PTH_NAME = "aifactory-dask-env.pth"
PTH_LINE = (
    f"import os; os.environ.get({HOST_ENV!r}, os.uname().nodename) != os.uname().nodename"
    f' and __import__("aifactory_workbench.job.dask_env", fromlist=["_"]).leave_login_settings()\n'
)


def leave_login_settings(environ: MutableMapping[str, str] | None = None, host: str | None = None) -> list[str]:
    """On a host other than the login shell's, remove that shell's host-bound Dask settings
    (and the record of them) from ``environ`` (this process's environment); the names removed."""
    env = os.environ if environ is None else environ
    recorded = env.get(HOST_ENV)
    if recorded is None or recorded == (host or os.uname().nodename):
        return []
    names = [n for n in env.get(VARS_ENV, "").split() if n.startswith(DASK_PREFIX) and n in env]
    for name in [*names, HOST_ENV, VARS_ENV]:
        env.pop(name, None)
    return names
