"""A JupyterLab server extension (runs in the user's server): what JupyterLab's status bar
shows of the job it runs in, and the save before the walltime ends.

``GET {base_url}aifactory/session`` answers the job's id, node, partition and resources,
the seconds left (``squeue``'s TimeLeft, asked at most every ``REFRESH`` seconds), the
site's warning minutes, the dashboards of Dask clusters started here, and how many times
SLURM's save signal has come.  The batch script passes SLURM's signal before the end
(``sbatch --signal=B:USR2@N``) on as SIGUSR2; JupyterLab pages (the ``@aifactory/workbench``
lab extension) see the count rise and save every open notebook.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from aifactory_workbench.lab.dashboard import FOLDER_ENV, running_dashboards
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.parsers import JobInfo, SlurmError
from aifactory_workbench.slurm.values import parse_duration

#: Seconds between squeue questions (whatever the number of open pages).
REFRESH = 30.0
SAVE_SIGNAL = signal.SIGUSR2


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "aifactory_workbench.lab.session"}]


def hub_home_url() -> str:
    """The hub's home page, on the hub's own origin (JupyterHub gives the server both parts)."""
    return os.environ.get("JUPYTERHUB_HOST", "") + os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/home"


def minutes(text: str) -> list[int]:
    return sorted({int(m) for m in text.split() if m.isdigit()}, reverse=True)


def job_facts(info: JobInfo) -> dict[str, str]:
    """What the status bar shows of the job besides its time left ("gres": "" when it has none)."""
    gres = "" if info.tres_per_node in ("(null)", "N/A") else info.tres_per_node
    return {
        "node": info.node,
        "partition": info.partition,
        "account": info.account,
        "cpus": info.cpus,
        "memory": info.memory,
        "gres": gres,
    }


class JobClock:
    """The job's time left, from squeue (through the SLURM client's reader), counted down
    locally between questions."""

    def __init__(self, slurm: Slurm, job_id: str) -> None:
        self.slurm, self.job_id = slurm, job_id
        self.left: float | None = None  # seconds, when asked
        self.asked = 0.0  # time.monotonic() of the last answer
        self.info: dict[str, str] = {}

    async def seconds_left(self) -> float | None:
        if not self.job_id:
            return None
        if time.monotonic() - self.asked >= REFRESH:
            try:
                info = await self.slurm.job(self.job_id)
            except SlurmError:
                info = None
            if info is not None:
                self.left = parse_duration(info.time_left)
                self.info = job_facts(info)
                self.asked = time.monotonic()
        if self.left is None:
            return None
        return max(0.0, self.left - (time.monotonic() - self.asked))


class SessionHandler(APIHandler):
    @web.authenticated
    async def get(self) -> None:
        state = self.settings["aifactory_session"]
        clock: JobClock = state["clock"]
        left = await clock.seconds_left()
        folder = os.environ.get(FOLDER_ENV, "")
        dashboards = running_dashboards(folder) if folder else []
        self.finish(
            json.dumps(
                {
                    "job_id": clock.job_id,
                    **clock.info,
                    "seconds_left": None if left is None else round(left),
                    "warn_minutes": minutes(os.environ.get("AIFACTORY_WARN_MINUTES", "")),
                    "save_before_end": int(os.environ.get("AIFACTORY_SAVE_BEFORE_END", "0") or 0),
                    "save_requests": state["save_requests"],
                    "dashboard": dashboards[0]["link"] if dashboards else "",
                    "hub_home": hub_home_url(),
                }
            )
        )


def _load_jupyter_server_extension(serverapp: Any) -> None:
    state: dict[str, Any] = {"clock": JobClock(Slurm(), os.environ.get("SLURM_JOB_ID", "")), "save_requests": 0}

    def save_requested(signum: int, frame: Any) -> None:
        state["save_requests"] += 1
        serverapp.log.warning(
            "aifactory_workbench.lab.session: the job ends soon; asking JupyterLab pages to save every notebook"
        )

    signal.signal(SAVE_SIGNAL, save_requested)
    serverapp.web_app.settings["aifactory_session"] = state
    route = url_path_join(serverapp.web_app.settings["base_url"], "aifactory", "session")
    serverapp.web_app.add_handlers(".*$", [(route, SessionHandler)])
    serverapp.log.info("aifactory_workbench.lab.session: %s (job %s)", route, state["clock"].job_id or "none")
