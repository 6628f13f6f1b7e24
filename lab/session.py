"""A JupyterLab server extension (runs in the user's server): what JupyterLab's status bar
shows of the job it runs in, and the save before the walltime ends.

``GET {base_url}aifactory/session`` answers the job's id, node, partition and resources,
the seconds left (``squeue``'s TimeLeft, asked at most every ``REFRESH`` seconds) and the
times in the words the page shows (:func:`time_texts`), the site's warning minutes, the
dashboards of Dask clusters started here, how many times SLURM's save signal has come, and the
``kernels`` of this server that run in jobs of their own, each with its job, state and time left
(lab/slurm_kernel.py's :class:`KernelJobsSeen`: one squeue call for all of them, at most every
10 s whatever the number of pages, only when there are any).
The batch script passes SLURM's signal before the end (``sbatch --signal=B:USR2@N``) on as
SIGUSR2; JupyterLab pages (the ``@aifactory/workbench`` lab extension) see the count rise and
save every open notebook.

``{base_url}aifactory/dask/NAME/...``: the dashboards of Dask schedulers started in this job,
on their private Unix sockets (lab/dashboard_proxy.py); the session's ``dashboard`` is the
newest one's address there, which JupyterLab's Dask panel opens.

``POST {base_url}aifactory/session/extend`` with ``{"minutes": N}``: the Extend button (in the
status bar and the walltime warning; offered when the site's ``singleuser.extend`` is on, which
reaches the job as ``AIFACTORY_EXTEND_MINUTES``). Only the server's owner may extend, not a
colleague it is shared with; the server asks the hub's extend API (hub/extend.py) with its own
token, answers what the hub said, and asks squeue again at once so the time left follows.
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
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import PeriodicCallback

from aifactory_workbench.job.launcher import tls_context
from aifactory_workbench.lab.dashboard import FOLDER_ENV, running_dashboards
from aifactory_workbench.lab.dashboard_proxy import add_dashboard_route, dashboard_link
from aifactory_workbench.lab.private_kernels import keep_kernels_private
from aifactory_workbench.lab.slurm_kernel import (
    CANCEL_ROUTE,
    CULL_SECONDS,
    KernelJobsSeen,
    cull_idle_kernels,
    starting_kernels,
)
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.display import duration_text
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


def extend_minutes() -> int:
    """What the Extend button adds (the site's step; 0: not offered)."""
    text = os.environ.get("AIFACTORY_EXTEND_MINUTES", "0")
    return int(text) if text.isdigit() else 0


def time_texts(left: int | None, save_before_end: int, extend: int) -> dict[str, Any]:
    """The session's times, as numbers (the page's countdown and warnings) and in words (what the
    page shows: slurm/display.py's rule, which the lab extension has no copy of): the time left
    ("" when squeue has not said), the save's lead and the Extend button's step."""
    return {
        "seconds_left": left,
        "time_left_text": "" if left is None else duration_text(left),
        "save_before_end": save_before_end,
        "save_before_end_text": duration_text(save_before_end) if save_before_end else "",
        "extend_minutes": extend,
        "extend_text": duration_text(extend * 60) if extend else "",
    }


def is_owner(user: Any, env: dict[str, str]) -> bool:
    """The person asking is the server's owner (not a colleague it is shared with)."""
    name = getattr(user, "username", "")  # the hub's user name (not a display name)
    return bool(name) and name == env.get("JUPYTERHUB_USER")


def extend_request(env: dict[str, str], minutes: int) -> HTTPRequest:
    """The hub's extend API for this server, with the server's own token."""
    base = env["JUPYTERHUB_API_URL"].rstrip("/")
    url = f"{base}/aifactory/extend/{env['JUPYTERHUB_USER']}/{env.get('JUPYTERHUB_SERVER_NAME', '')}"
    return HTTPRequest(
        url,
        method="POST",
        body=json.dumps({"minutes": minutes}),
        headers={"Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}", "Content-Type": "application/json"},
        ssl_options=tls_context(env),
        request_timeout=120,  # longer than the hub waits for its root helper (hub/extend.py HELPER_TIMEOUT)
    )


class ExtendHandler(APIHandler):
    @web.authenticated
    async def post(self) -> None:
        env = dict(os.environ)
        if not extend_minutes():
            raise web.HTTPError(403, "this site does not extend sessions")
        if not is_owner(self.current_user, env):
            raise web.HTTPError(403, f"only {env.get('JUPYTERHUB_USER', 'its owner')} may extend this session")
        body = self.get_json_body() or {}
        minutes = body.get("minutes", extend_minutes()) if isinstance(body, dict) else None
        if type(minutes) is not int:
            raise web.HTTPError(400, 'send {"minutes": N}, N a whole number of minutes')
        try:
            reply = await AsyncHTTPClient().fetch(extend_request(env, minutes), raise_error=False)
        except OSError as e:
            raise web.HTTPError(503, f"the hub did not answer: {e}") from e
        if reply.code == 599:
            raise web.HTTPError(503, f"the hub did not answer: {reply.error}")
        if reply.code == 200:
            self.settings["aifactory_session"]["clock"].asked = 0.0  # ask squeue again now
        self.set_status(reply.code)
        self.finish(reply.body or b"{}")


class KernelJobHandler(APIHandler):
    """``DELETE aifactory/session/kernel-jobs/JOB``: the owner cancels a kernel's job while it
    waits to start (the status bar's Cancel); its start then ends saying so."""

    @web.authenticated
    async def delete(self, job_id: str) -> None:
        if not is_owner(self.current_user, dict(os.environ)):
            owner = os.environ.get("JUPYTERHUB_USER", "its owner")
            raise web.HTTPError(403, f"only {owner} may cancel this server's kernels' jobs")
        waiting = [p for _, p in starting_kernels() if p.job_id == job_id]
        if not waiting:
            raise web.HTTPError(404, f"no kernel of this server waits to start in job {job_id}")
        try:
            await waiting[0].withdraw()
        except SlurmError as e:
            raise web.HTTPError(503, f"SLURM did not cancel job {job_id}: {e}") from e
        self.finish(json.dumps({"cancelled": job_id}))


class SessionHandler(APIHandler):
    @web.authenticated
    async def get(self) -> None:
        state = self.settings["aifactory_session"]
        clock: JobClock = state["clock"]
        left = await clock.seconds_left()
        folder = os.environ.get(FOLDER_ENV, "")
        dashboards = running_dashboards(folder) if folder else []
        kernels = await state["kernels"](self.kernel_manager)
        self.finish(
            json.dumps(
                {
                    "job_id": clock.job_id,
                    **clock.info,
                    **time_texts(
                        None if left is None else round(left),
                        int(os.environ.get("AIFACTORY_SAVE_BEFORE_END", "0") or 0),
                        extend_minutes() if is_owner(self.current_user, dict(os.environ)) else 0,
                    ),
                    "warn_minutes": minutes(os.environ.get("AIFACTORY_WARN_MINUTES", "")),
                    "save_requests": state["save_requests"],
                    "dashboard": dashboard_link(self.base_url, dashboards[0]["name"]) if dashboards else "",
                    "hub_home": hub_home_url(),
                    "kernels": kernels,
                }
            )
        )


def _load_jupyter_server_extension(serverapp: Any) -> None:
    slurm = Slurm()
    state: dict[str, Any] = {
        "clock": JobClock(slurm, os.environ.get("SLURM_JOB_ID", "")),
        "save_requests": 0,
        "kernels": KernelJobsSeen(slurm),
    }

    def save_requested(signum: int, frame: Any) -> None:
        state["save_requests"] += 1
        serverapp.log.warning(
            "aifactory_workbench.lab.session: the job ends soon; asking JupyterLab pages to save every notebook"
        )

    signal.signal(SAVE_SIGNAL, save_requested)
    serverapp.web_app.settings["aifactory_session"] = state
    route = url_path_join(serverapp.web_app.settings["base_url"], "aifactory", "session")
    kernel_jobs = url_path_join(serverapp.web_app.settings["base_url"], CANCEL_ROUTE, r"(\d+)")
    serverapp.web_app.add_handlers(
        ".*$",
        [(route, SessionHandler), (url_path_join(route, "extend"), ExtendHandler), (kernel_jobs, KernelJobHandler)],
    )
    add_dashboard_route(serverapp.web_app)  # the Dask dashboards of this job, for its Dask panel
    kernels = keep_kernels_private(serverapp)  # no other tenant on the node reaches its kernels
    # A kernel in a job of its own left idle with no notebook connected frees what it holds.
    PeriodicCallback(lambda: cull_idle_kernels(serverapp.kernel_manager, serverapp.log), CULL_SECONDS * 1000).start()
    serverapp.log.info("aifactory_workbench.lab.session: kernels on Unix sockets in %s", kernels)
    serverapp.log.info("aifactory_workbench.lab.session: %s (job %s)", route, state["clock"].job_id or "none")
