"""A JupyterLab server extension (runs in the user's server): a busy kernel or a running Dask
worker job of this server counts as use, so the hub's idle culler never stops a long analysis
because nobody clicked.  jupyter-server adds ``last_activity_times`` to what it reports to the hub.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from tornado.ioloop import PeriodicCallback

from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.parsers import SlurmError

KEY = "aifactory"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "aifactory_workbench.lab.activity"}]


def kernels_busy(serverapp: Any) -> bool:
    return any(k.get("execution_state") == "busy" for k in serverapp.kernel_manager.list_kernels())


async def workers_running(slurm: Slurm, user: str, worker_name: str) -> bool:
    """Whether this server's Dask worker jobs (named after its job) run."""
    if not worker_name:
        return False
    try:
        return bool(await slurm.running_jobs(worker_name, user=user))
    except SlurmError:
        return False


async def mark_use(serverapp: Any, slurm: Slurm) -> bool:
    """Record now as activity if a kernel is busy or Dask workers run; say whether it did."""
    in_use = kernels_busy(serverapp) or await workers_running(
        slurm, os.environ.get("USER", ""), os.environ.get("DASK_JOBQUEUE__SLURM__NAME", "")
    )
    if in_use:
        serverapp.web_app.settings.setdefault("last_activity_times", {})[KEY] = datetime.now(UTC)
    return in_use


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Checks every half activity interval; the hub sets the interval only when a culler runs,
    so without one the extension costs nothing (no squeue at all)."""
    if "JUPYTERHUB_ACTIVITY_INTERVAL" not in os.environ:
        return
    interval = float(os.environ["JUPYTERHUB_ACTIVITY_INTERVAL"])
    slurm = Slurm()
    check = PeriodicCallback(lambda: asyncio.ensure_future(mark_use(serverapp, slurm)), interval * 1000 / 2)
    check.start()
    serverapp.log.info(
        "aifactory_workbench.lab.activity: busy kernels and Dask workers count as use (every %.0fs)", interval / 2
    )
