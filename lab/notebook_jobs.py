"""A JupyterLab server extension (runs in the user's server, as the user): notebooks run as
batch jobs from JupyterLab's menus, the same jobs ``aifactory-run-notebook`` submits.

``GET {base_url}aifactory/notebook-jobs``: the resources a job gets unless told otherwise (the
site's notebook-job preset, read once when the server starts: never this session's) and the
user's notebook jobs of the last week, paths relative to the server's root, each with its
state in words (``state_text``) and an output's path only when it is there to open (none for a
job cancelled while queued): JupyterLab's panel shows what this says.
``POST`` the same with ``{"path", "cpus", "memory", "walltime", "partition", "account"}``:
submit that notebook with its own kernel; a refused value is a 400 that names it, and nothing
is submitted.
``DELETE {base_url}aifactory/notebook-jobs/JOBID``: cancel one of the user's own queued or running
notebook jobs, by the rule ``aifactory-run-notebook cancel`` follows (lab/batch.py's ``cancel``):
``{"message"}`` says what was done; a 400 names why not (not a job id, not one of the user's
notebook jobs, already ended), a 503 that SLURM did not answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from aifactory_workbench.job import notebook_job_outputs
from aifactory_workbench.lab.batch import cancel, kernel_of, notebook_job_defaults, status, submit
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.job_fields import JOB_FIELDS
from aifactory_workbench.slurm.parsers import SlurmError


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "aifactory_workbench.lab.notebook_jobs"}]


def relative(path: str, root: Path) -> str:
    """``path`` relative to the server's root; "" for none, or one outside it."""
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return ""


#: The settings key holding what a notebook job asks for unless told otherwise (read once).
DEFAULTS_SETTING = "aifactory_notebook_job_defaults"


class NotebookJobsHandler(APIHandler):
    @property
    def root(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser().resolve()

    @property
    def defaults(self) -> dict[str, Any]:
        """A fresh copy of the notebook-job defaults the extension read when it was loaded."""
        return dict(self.settings[DEFAULTS_SETTING])

    @web.authenticated
    async def get(self) -> None:
        user = os.environ.get("USER", "")
        try:
            jobs = await asyncio.get_running_loop().run_in_executor(None, status, user, Slurm())
        except SlurmError as e:
            raise web.HTTPError(503, f"SLURM's accounting did not answer: {e}") from e
        for job in jobs:
            for key in ("notebook", "result", "log"):
                job[f"{key}_path"] = relative(job[key], self.root)
        fields = [{"name": f.name, "label": f.label, "help": f.help, "number": f.kind is int} for f in JOB_FIELDS]
        self.finish(json.dumps({"defaults": self.defaults, "fields": fields, "jobs": jobs}))

    @web.authenticated
    async def post(self) -> None:
        body = self.get_json_body() or {}
        path = str(body.get("path", ""))
        notebook = (self.root / path).resolve()
        if not path or not notebook.is_relative_to(self.root):
            raise web.HTTPError(400, f"{path!r}: not a notebook of this JupyterLab")
        resources = self.defaults
        for f in JOB_FIELDS:
            value = body.get(f.name, resources[f.name])
            if f.kind is int and not (type(value) is int or (isinstance(value, str) and value.strip().isdigit())):
                raise web.HTTPError(400, f"{f.label}: a whole number, not {value!r}")
            resources[f.name] = int(value) if f.kind is int else str(value)
        run = asyncio.get_running_loop().run_in_executor
        try:
            job_id = await run(None, submit, notebook, [], kernel_of(notebook), resources, Slurm())
        except SystemExit as e:  # the command line's refusal: every bad value, named
            raise web.HTTPError(400, str(e).removeprefix("aifactory-run-notebook: ")) from None
        except SlurmError as e:
            raise web.HTTPError(400, f"SLURM refused the job: {e}") from e
        result, log = notebook_job_outputs(notebook, job_id)
        self.set_status(201)
        self.finish(
            json.dumps(
                {
                    "job": job_id,
                    "result_path": relative(str(result), self.root),
                    "log_path": relative(str(log), self.root),
                }
            )
        )


def cancel_answer(job_id: str, user: str, slurm: Slurm) -> tuple[int, str]:
    """What ``DELETE .../notebook-jobs/JOBID`` answers: (HTTP status, message). The rule is
    lab/batch.py's ``cancel``, the command line's: this only words its refusals for a page."""
    try:
        return 200, cancel(job_id, user, slurm)
    except SystemExit as e:  # the rule's refusal, named
        return 400, str(e).removeprefix("aifactory-run-notebook: ")
    except SlurmError as e:
        return 503, f"SLURM did not cancel job {job_id}: {e}"


class NotebookJobHandler(APIHandler):
    @web.authenticated
    async def delete(self, job_id: str) -> None:
        user = os.environ.get("USER", "")
        code, message = await asyncio.get_running_loop().run_in_executor(None, cancel_answer, job_id, user, Slurm())
        if code != 200:
            raise web.HTTPError(code, message)
        self.finish(json.dumps({"job": job_id, "message": message}))


def _load_jupyter_server_extension(serverapp: Any) -> None:
    route = url_path_join(serverapp.web_app.settings["base_url"], "aifactory", "notebook-jobs")
    serverapp.web_app.settings[DEFAULTS_SETTING] = notebook_job_defaults()
    serverapp.web_app.add_handlers(".*$", [(route, NotebookJobsHandler), (f"{route}/([^/]+)", NotebookJobHandler)])
    serverapp.log.info("aifactory_workbench.lab.notebook_jobs: %s", route)
