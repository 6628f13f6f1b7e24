"""A JupyterLab server extension (runs in the user's server, as the user): notebooks run as
batch jobs from JupyterLab's menus, the same jobs ``aifactory-run-notebook`` submits.

``GET {base_url}aifactory/notebook-jobs``: the resources a job gets unless told otherwise (the
site's notebook-job preset, read once when the server starts: never this session's) and the
user's notebook jobs of the last week, paths relative to the server's root, each with its
state in words (``state_text``) and an output's path only when it is there to open (none for a
job cancelled while queued): JupyterLab's panel shows what this says.
``POST`` the same with ``{"path", "cpus", "memory", "walltime", "partition", "account", ...}`` (any
job field, as typed): submit that notebook with its own kernel; a value beyond the user's limits
(those the spawn form holds a session to: slurm/choices.py) or one its rule refuses is a 400
that names it, and nothing is submitted; a 503 when SLURM did not say what the limits are.
``POST {base_url}aifactory/notebook-jobs/estimate`` with the same body: what the "Run as batch
job" dialog shows for those values, as the spawn form does for a session (lab/batch.py's
``estimate``): the partition's limits for this user, the cost if the job runs its whole
walltime, SLURM's expected start (``sbatch --test-only``: nothing is submitted), and ``refused``
(``{"field", "message"}``) for a value that would be refused; a 503 when SLURM did not answer.
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
from aifactory_workbench.lab.batch import (
    cancel,
    estimate,
    job_settings,
    kernel_of,
    notebook_job_defaults,
    status,
    submit,
    typed_resources,
    user_choices,
)
from aifactory_workbench.slurm.choices import Choices
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.job_fields import JOB_FIELDS, OptionError
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


def notebook_in(path: str, root: Path) -> Path | None:
    """The notebook ``path`` names, relative to the server's root; None for none, or one outside it."""
    notebook = (root / path).resolve()
    return notebook if path and notebook.is_relative_to(root) else None


Answer = tuple[int, dict[str, Any]]


class Refusal(Exception):
    """A request the routes refuse: its HTTP status, why, and the job field it names ("": none)."""

    def __init__(self, code: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field

    @property
    def answer(self) -> Answer:
        return self.code, {"message": self.message, "field": self.field}


async def checked_request(
    body: dict[str, Any], root: Path, defaults: dict[str, Any], user: str, slurm: Slurm
) -> tuple[Path, dict[str, Any], Choices]:
    """What the dialog asks about: its notebook, its values typed over the defaults, and what the
    user may ask SLURM for. Refusal: a 400 for a path outside the server's root or a value its
    rule refuses (naming its field), a 503 when SLURM did not say what the user may ask for."""
    path = str(body.get("path", ""))
    notebook = notebook_in(path, root)
    if notebook is None:
        raise Refusal(400, f"{path!r}: not a notebook of this JupyterLab")
    try:
        resources = typed_resources(body, defaults)
    except OptionError as e:
        raise Refusal(400, str(e), e.field) from e
    try:
        return notebook, resources, await user_choices(user, slurm)
    except SlurmError as e:
        raise Refusal(503, f"SLURM did not say what you may ask for: {e}") from e


#: An estimate's answer for values refused before SLURM is asked: nothing to show but why.
NO_ESTIMATE: dict[str, Any] = {"limits": None, "partitions": [], "cost": None, "start": "", "start_text": ""}


async def estimate_answer(
    body: dict[str, Any], root: Path, defaults: dict[str, Any], user: str, slurm: Slurm
) -> Answer:
    """What ``POST .../notebook-jobs/estimate`` answers: (HTTP status, body); a value its rule
    refuses is answered as one beyond a limit is (200, ``refused``), with nothing else to show."""
    try:
        notebook, resources, choices = await checked_request(body, root, defaults, user, slurm)
        return 200, await estimate(notebook, resources, choices, slurm)
    except Refusal as e:
        if e.code == 400 and e.field:
            return 200, NO_ESTIMATE | {"refused": {"field": e.field, "message": e.message}}
        return e.answer
    except SlurmError as e:
        return 503, {"message": f"SLURM did not answer: {e}", "field": ""}


def submitted(notebook: Path, resources: dict[str, Any], slurm: Slurm) -> Answer:
    """Submit the notebook job (lab/batch.py's ``submit``, blocking): 201 with its id and outputs,
    else a 400 that says what was refused."""
    try:
        job_id = submit(notebook, [], kernel_of(notebook), resources, slurm)
    except SystemExit as e:  # the command line's refusal: every bad value, named
        return 400, {"message": str(e).removeprefix("aifactory-run-notebook: "), "field": ""}
    except SlurmError as e:
        return 400, {"message": f"SLURM refused the job: {e}", "field": ""}
    result, log = notebook_job_outputs(notebook, job_id)
    return 201, {"job": job_id, "result": str(result), "log": str(log)}


async def submit_answer(body: dict[str, Any], root: Path, defaults: dict[str, Any], user: str, slurm: Slurm) -> Answer:
    """What ``POST .../notebook-jobs`` answers: (HTTP status, body). Checked as the estimate is,
    the limits included, before anything is submitted: a refusal submits nothing."""
    try:
        notebook, resources, choices = await checked_request(body, root, defaults, user, slurm)
        choices.check(job_settings(resources))
    except Refusal as e:
        return e.answer
    except OptionError as e:
        return 400, {"message": str(e), "field": e.field}
    return await asyncio.get_running_loop().run_in_executor(None, submitted, notebook, resources, slurm)


class NotebookJobsApi(APIHandler):
    """What the notebook jobs' routes share: the server's root, the defaults, the user."""

    @property
    def root(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser().resolve()

    @property
    def defaults(self) -> dict[str, Any]:
        """A fresh copy of the notebook-job defaults the extension read when it was loaded."""
        return dict(self.settings[DEFAULTS_SETTING])

    @property
    def user(self) -> str:
        return os.environ.get("USER", "")

    def finish_answer(self, answer: Answer) -> None:
        code, body = answer
        if code >= 400:
            raise web.HTTPError(code, body["message"])
        self.set_status(code)
        self.finish(json.dumps(body))


class NotebookJobsHandler(NotebookJobsApi):
    @web.authenticated
    async def get(self) -> None:
        try:
            jobs = await asyncio.get_running_loop().run_in_executor(None, status, self.user, Slurm())
        except SlurmError as e:
            raise web.HTTPError(503, f"SLURM's accounting did not answer: {e}") from e
        for job in jobs:
            for key in ("notebook", "result", "log"):
                job[f"{key}_path"] = relative(job[key], self.root)
        fields = [{"name": f.name, "label": f.label, "help": f.help, "number": f.kind is int} for f in JOB_FIELDS]
        self.finish(json.dumps({"defaults": self.defaults, "fields": fields, "jobs": jobs}))

    @web.authenticated
    async def post(self) -> None:
        code, body = await submit_answer(self.get_json_body() or {}, self.root, self.defaults, self.user, Slurm())
        if code == 201:
            body = {
                "job": body["job"],
                "result_path": relative(body["result"], self.root),
                "log_path": relative(body["log"], self.root),
            }
        self.finish_answer((code, body))


class NotebookJobEstimateHandler(NotebookJobsApi):
    @web.authenticated
    async def post(self) -> None:
        body = self.get_json_body() or {}
        self.finish_answer(await estimate_answer(body, self.root, self.defaults, self.user, Slurm()))


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


def defaults_here(log: Any) -> dict[str, Any]:
    """The notebook-job defaults of this session (lab/batch.py's ``notebook_job_defaults``); the
    product's, logged as an error, when the session's variable holds no preset (set by hand)."""
    try:
        return notebook_job_defaults()
    except ValueError as e:
        log.error("aifactory_workbench.lab.notebook_jobs: %s; the product's notebook-job preset applies", e)
        return notebook_job_defaults({})


def _load_jupyter_server_extension(serverapp: Any) -> None:
    route = url_path_join(serverapp.web_app.settings["base_url"], "aifactory", "notebook-jobs")
    serverapp.web_app.settings[DEFAULTS_SETTING] = defaults_here(serverapp.log)
    handlers = [
        (route, NotebookJobsHandler),
        (f"{route}/estimate", NotebookJobEstimateHandler),  # before a job's route, which takes any name
        (f"{route}/([^/]+)", NotebookJobHandler),
    ]
    serverapp.web_app.add_handlers(".*$", handlers)
    serverapp.log.info("aifactory_workbench.lab.notebook_jobs: %s", route)
