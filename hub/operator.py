"""Workbench jobs besides JupyterLab, for their owner and for the operator.

* ``GET /hub/api/aifactory/jobs/USER`` (``servers`` on USER): USER's Dask worker jobs, grouped by
  the job that started them (count, cores, core-hours so far), live kernels in jobs of their own
  (the session card lists them: partition, node, state, time left, cores, GPUs), and notebook
  jobs of the last week (state, in words, and links to the executed notebook and log in the
  running JupyterLab, only to those that are there: the running server is asked; without one,
  what accounting says); a queued notebook job's or kernel's reason and expected start in
  words, from one squeue call.
* ``DELETE /hub/api/aifactory/jobs/USER/workers/JOB``: cancel the Dask workers job JOB started
  (as USER: the hub may cancel exactly those, config/sudoers.in), audited.
* ``POST /hub/api/aifactory/jobs/USER/notebooks/JOB/cancel``: cancel USER's queued or running
  notebook job JOB (the home page's Cancel), once SLURM's accounting says it is one (as USER,
  through root's cancel helper), audited; a refusal says why in words.
* ``/hub/operator`` (admins): every pending and running workbench job of every user, with its
  account, partition, node, cores, GPUs, time left, idle time and cost, filtered by account and
  partition; a session or job stopped with a reason, which its owner is shown.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from jupyterhub import orm
from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.httpclient import fetch
from jupyterhub.scopes import needs_scope
from tornado import web

from aifactory_workbench.slurm.display import duration_text, hours_data, hours_text
from aifactory_workbench.slurm.parsers import SlurmError
from aifactory_workbench.slurm.values import is_unix_user
from aifactory_workbench.spawners.jobscript import worker_job_name
from aifactory_workbench.spawners.workbench_jobs import (
    NOTEBOOK_DAYS,
    WORKBENCH_JOB_FIELDS,
    NotCancelled,
    check_job_id,
    in_home,
    kernel_jobs,
    live_jobs,
    notebook_job_to_cancel,
    notebook_jobs,
    queued_to_explain,
    worker_groups,
)

JOBS_API_ROUTE = r"/api/aifactory/jobs/([^/]+)"
WORKERS_API_ROUTE = r"/api/aifactory/jobs/([^/]+)/workers/([0-9]+)"
NOTEBOOK_CANCEL_API_ROUTE = r"/api/aifactory/jobs/([^/]+)/notebooks/([0-9]+)/cancel"
OPERATOR_PAGE_ROUTE = r"/operator"
#: How many notebook jobs the home page lists (the newest).
NOTEBOOK_JOBS_SHOWN = 10
REASON_MAX = 200


def scheduler_refusal(e: SlurmError) -> web.HTTPError:
    return web.HTTPError(503, f"SLURM's accounting did not answer: {e}")


class JobsHandler(APIHandler):
    @needs_scope("servers")
    async def get(self, user_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        spawner = user.spawner
        try:
            rows = await spawner.slurm.job_rows(WORKBENCH_JOB_FIELDS, user=user.name, since=f"now-{NOTEBOOK_DAYS}days")
        except SlurmError as e:
            raise scheduler_refusal(e) from e
        lab = f"{user.server_url('')}lab/tree/" if spawner.ready else ""
        queue = await queued_jobs(spawner.slurm, queued_to_explain(rows))
        jobs = [job.as_data() for job in notebook_jobs(rows, queue)[:NOTEBOOK_JOBS_SHOWN]]
        outputs = [in_home(job[key], spawner.req_homedir) for job in jobs for key in ("result", "log")]
        there = await files_there(spawner, [path for path in outputs if path]) if lab else None
        notebooks = []
        for data in jobs:
            for key in ("notebook", "result", "log"):
                relative = in_home(data[key], spawner.req_homedir)
                if key != "notebook" and relative and there is not None and relative not in there:
                    data[key] = relative = ""  # the server has no such file: nothing to offer
                data[f"{key}_url"] = f"{lab}{relative}" if lab and relative else ""
            notebooks.append(data)
        self.finish(
            {
                "workers": [g.as_data() | hours_data(g.core_hours, g.gpu_hours) for g in worker_groups(rows)],
                "kernels": [k.as_data() for k in kernel_jobs(rows, queue)],
                "notebooks": notebooks,
                "days": NOTEBOOK_DAYS,
            }
        )


async def queued_jobs(slurm: Any, job_ids: list[str]) -> dict[str, Any]:
    """squeue's rows for these queued jobs (one call; none to ask: no call), for why each waits
    and when SLURM expects it to start; {} when squeue does not answer: the list is shown without."""
    if not job_ids:
        return {}
    try:
        found: dict[str, Any] = await slurm.jobs_by_id(job_ids)
    except SlurmError:
        return {}
    return found


async def files_there(spawner: Any, paths: list[str]) -> set[str] | None:
    """Which of ``paths`` (relative to its root) the user's running server has, asked with the
    server's own token through JupyterHub's HTTP client (internal_ssl: it carries the hub's
    certificate); None when the server does not say (the hub cannot look into a home folder)."""
    base = f"{spawner.server.url.rstrip('/')}/api/contents/"

    async def there(path: str) -> bool:
        reply: aiohttp.ClientResponse = await fetch(
            f"{base}{quote(path)}?content=0",
            headers={"Authorization": f"token {spawner.api_token}"},
            raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=10),
        )
        reply.close()
        if reply.status not in (200, 404):
            raise aiohttp.ClientError(f"the server answered {reply.status}")
        return reply.status == 200

    unique = list(dict.fromkeys(paths))
    try:
        answers = await asyncio.gather(*(there(path) for path in unique))
    except (aiohttp.ClientError, TimeoutError):
        return None
    return {path for path, yes in zip(unique, answers, strict=True) if yes}


class WorkersHandler(APIHandler):
    def initialize(self, audit: Any) -> None:
        self.audit = audit

    @needs_scope("servers")
    async def delete(self, user_name: str, parent_job: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        try:
            await user.spawner.slurm.cancel_named(worker_job_name(parent_job), user=user.name)
        except SlurmError as e:
            raise web.HTTPError(503, f"SLURM did not cancel the workers: {e}") from e
        self.audit.record("dask_workers_stopped", user=user.name, job_id=parent_job, by=self.current_user.name)
        self.set_status(204)
        self.finish()


async def cancel_notebook_job(slurm: Any, user: str, job_id: str) -> tuple[int, dict[str, Any]]:
    """Cancel ``user``'s queued or running notebook job ``job_id`` as ``user`` (the cancel
    helper): (HTTP status, body), ``200 {"job", "message"}`` or ``{"status", "message"}`` in
    words. What may be cancelled is spawners/workbench_jobs.py's rule, checked against what
    SLURM's accounting lists for ``user`` now (the list the home page shows); nothing reaches
    scancel otherwise, and a malformed id not even sacct."""
    try:
        check_job_id(job_id)
        rows = await slurm.job_rows(WORKBENCH_JOB_FIELDS, user=user, since=f"now-{NOTEBOOK_DAYS}days")
        job = notebook_job_to_cancel(rows, job_id, user)
        await slurm.cancel(job_id, user=user)
    except NotCancelled as e:
        return e.status, {"status": e.status, "message": e.message}
    except SlurmError as e:
        return 503, {"status": 503, "message": f"SLURM did not cancel job {job_id}: {e}"}
    return 200, {"job": job_id, "message": f"job {job_id} ({job.notebook}) cancelled"}


class NotebookCancelHandler(APIHandler):
    """The home page's Cancel of a notebook job (``servers`` on USER; a cookie caller's XSRF token
    is checked by JupyterHub), audited whether done or refused."""

    def initialize(self, audit: Any) -> None:
        self.audit = audit

    @needs_scope("servers")
    async def post(self, user_name: str, job_id: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        status, answer = await cancel_notebook_job(user.spawner.slurm, user.name, job_id)
        event = {"user": user.name, "by": self.current_user.name, "job_id": job_id}
        if status == 200:
            self.audit.record("notebook_job_cancelled", **event)
        else:
            self.audit.record("notebook_job_cancel_refused", **event, status=status, reason=answer["message"])
        self.set_status(status)
        self.finish(answer)


def session_spawners(db: Any, users: Any) -> dict[str, Any]:
    """Every active server's spawner, by its job id."""
    found: dict[str, Any] = {}
    for orm_spawner in db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None)):
        spawner = users[orm_spawner.user].spawners.get(orm_spawner.name)
        job_id: str = getattr(spawner, "job_id", "") if spawner is not None else ""
        if job_id:
            found[job_id] = spawner
    return found


def idle_text(spawner: Any, now: float) -> str:
    last = spawner.orm_spawner.last_activity if spawner is not None else None
    if last is None:
        return ""
    return duration_text(max(0, int(now - last.timestamp())))


class OperatorPage(BaseHandler):
    """Every workbench job now, for admins; POST stops one, with a reason its owner is shown."""

    def initialize(self, audit: Any, session_job_name: str) -> None:
        self.audit = audit
        self.session_job_name = session_job_name

    def check_admin(self) -> None:
        if not self.current_user.admin:
            raise web.HTTPError(403, "the operator page is for the hub's admins")

    @web.authenticated
    async def get(self) -> None:
        self.check_admin()
        error = ""
        try:
            rows = await self.current_user.spawner.slurm.job_rows(WORKBENCH_JOB_FIELDS)
            jobs = live_jobs(rows, self.session_job_name)
        except SlurmError as e:
            jobs, error = [], f"SLURM's accounting did not answer: {e}"
        account, partition = self.get_argument("account", ""), self.get_argument("partition", "")
        shown = [
            j for j in jobs if (not account or j.account == account) and (not partition or j.partition == partition)
        ]
        sessions, now = session_spawners(self.db, self.users), time.time()
        rows = [
            {
                "job": j,
                "idle": idle_text(sessions.get(j.job_id), now) if j.kind == "JupyterLab" else "",
                "left": duration_text(j.seconds_left) if j.seconds_left is not None else "",
                "core_hours": hours_text(j.core_hours),
            }
            for j in shown
        ]
        html = await self.render_template(
            "operator.html",
            rows=rows,
            error=error,
            account=account,
            partition=partition,
            accounts=sorted({j.account for j in jobs}),
            partitions=sorted({j.partition for j in jobs}),
            total_cores=sum(j.cores for j in shown),
            total_core_hours=hours_text(sum(j.core_hours for j in shown)),
            stopped=self.get_argument("stopped", ""),
        )
        self.finish(html)

    @web.authenticated
    async def post(self) -> None:
        """Stop a job (the XSRF check is JupyterHub's): a session through the hub, so that its
        owner's next page says who stopped it and why; another workbench job by scancel."""
        self.check_admin()
        job_id, owner = self.get_body_argument("job", ""), self.get_body_argument("user", "")
        reason = " ".join(self.get_body_argument("reason", "").split())[:REASON_MAX]
        if not (job_id.isdigit() and is_unix_user(owner)):
            raise web.HTTPError(400, "name a job by its number and its owner by a user name")
        if not reason:
            raise web.HTTPError(400, "say why you stop the job: its owner is shown the reason")
        by = self.current_user.name
        spawner = session_spawners(self.db, self.users).get(job_id)
        if spawner is not None and spawner.user.name == owner:
            spawner.stop_note = f"{by}, an operator, stopped it: {reason}"
            await self.stop_single_user(spawner.user, spawner.name)
        else:
            try:
                await self.current_user.spawner.slurm.cancel(job_id, user=owner)
            except SlurmError as e:
                raise web.HTTPError(503, f"SLURM did not cancel job {job_id}: {e}") from e
        self.audit.record("operator_stop", user=owner, job_id=job_id, by=by, reason=reason)
        self.redirect(f"{self.hub.base_url}operator?stopped={job_id}")
