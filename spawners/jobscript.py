"""The JupyterLab job: what it may ask SLURM for, and the batch script that asks.

Only values that passed their rules (slurm/job_fields.py) reach the template, so no user
string can add a line, an ``#SBATCH`` directive or a shell word to the script.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import jinja2

from aifactory_workbench.job import BATCH_TEMPLATE, PACKAGE_INDEX_OPTIONS, WORKER_JOB_PREFIX, index_options
from aifactory_workbench.slurm.job_fields import BY_NAME, USER_OPTIONS, JobSettings, problems, sbatch_options
from aifactory_workbench.slurm.job_fields import OptionError as OptionError  # where the spawners import it from
from aifactory_workbench.slurm.values import SiteHooks, is_unix_user, prologue_words

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
#: One PEM block: nothing in it can end the script's here-document or run as shell.
_PEM = re.compile(r"(-----BEGIN [A-Z ]+-----\n[A-Za-z0-9+/=\n]+-----END [A-Z ]+-----\n?)+")
#: internal_ssl: the server's key, certificate and CA, written by the job into a private folder.
CERT_FILES = ("keyfile", "certfile", "cafile")
_HOME = re.compile(r"/[A-Za-z0-9_./-]*")
#: The user's folder of job logs, relative to the home (linked from the hub's session card).
LOG_FOLDER = ".aifactory/logs"


@dataclass(frozen=True)
class SessionTimes:
    """The end of a JupyterLab job as JupyterLab shows it: warnings ``warn_minutes`` before
    the walltime ends, a signal ``save_before_end`` seconds before it, on which every
    open notebook is saved (0: no signal), and the minutes its Extend button adds
    (``extend_minutes``; 0: the site offers none)."""

    warn_minutes: tuple[int, ...] = (15, 5)
    save_before_end: int = 300
    extend_minutes: int = 0


#: A site that adds nothing to its jobs.
NO_HOOKS = SiteHooks()


def worker_job_name(server_job_id: str) -> str:
    return f"{WORKER_JOB_PREFIX}{server_job_id}"


def apply_options(defaults: JobSettings, options: Mapping[str, Any]) -> JobSettings:
    """The defaults with a user's options applied; refuse an unknown option or a value that breaks its rule."""
    unknown = sorted(set(options) - set(USER_OPTIONS))
    if unknown:
        raise OptionError(unknown[0], options[unknown[0]], f"one of the options {', '.join(USER_OPTIONS)}")
    found = problems(options)
    if found:
        raise OptionError.of(found)
    return replace(defaults, **dict(options))


@dataclass(frozen=True)
class JobRequest:
    """Everything the batch script is rendered from."""

    user: str
    home: str
    job_name: str
    settings: JobSettings

    @classmethod
    def build(
        cls, user: str, home: str, job_name: str, defaults: JobSettings, options: Mapping[str, Any]
    ) -> JobRequest:
        """The site's job defaults (checked when the hub started) with a user's options applied."""
        if not is_unix_user(user):
            raise OptionError("user", user, "a Unix user name")
        if not _HOME.fullmatch(home) or ".." in home.split("/"):
            raise OptionError("home", home, "an absolute path without '..'")
        return cls(user, home, job_name, apply_options(defaults, options))

    @property
    def output_path(self) -> str:
        """Where SLURM opens the job's log: the home, which exists before the job does."""
        return f"{self.home.rstrip('/')}/.aifactory-jupyterlab-%j.log"

    @property
    def log_path(self) -> str:
        """Where the log lives once the job runs: the script moves it (the open file follows)
        into the user's one folder of job logs, which it makes."""
        return f"{self.home.rstrip('/')}/{LOG_FOLDER}/jupyterlab-%j.log"


def render(
    request: JobRequest,
    command: Iterable[str],
    export: Iterable[str],
    certs: Mapping[str, str] | None = None,
    before: Iterable[Sequence[str]] = (),
    times: SessionTimes = SessionTimes(),
    site: SiteHooks = NO_HOOKS,
    package_index: Sequence[str] = (),
    gallery_dir: str = "",
    notebook_job: Mapping[str, Any] | None = None,
) -> str:
    """The batch script: ``command`` runs as the job's main process with ``export`` env;
    the commands ``before`` (a workshop's materials, a gallery notebook) run first, and may
    fail without stopping JupyterLab; ``times``: the warnings and the save signal before the end;
    ``site``: the site's own commands, Lmod and port range (:class:`SiteHooks`), refused unless
    each passes its rule; ``package_index``: the site's package index as uv's options
    (:func:`package_index_problems`), which ``aifactory-env create`` in the job installs from;
    ``gallery_dir``: the gallery's folder, from which the session opens a published notebook
    (lab/publish.py; "": the hub has no gallery); ``notebook_job``: the site's notebook-job preset
    (its ``form.notebook_job``), what notebook jobs started in the session ask for unless told
    otherwise (lab/batch.py; None: the product's), refused unless each value passes its job field's
    rule. All three are exported by the script itself: sudo lets no variable of the hub's through
    but :data:`~aifactory_workbench.job.JOB_ENVIRONMENT`, and the site file may be on the hub's host only.

    ``certs`` (internal_ssl) maps keyfile, certfile and cafile to PEM text. They travel in the
    script, which SLURM shows only to the job's owner and admins (never in argv or a shared
    file), and the job writes them to a folder only its user can read."""
    names = sorted(set(export))
    bad = [n for n in names if not _ENV_NAME.fullmatch(n)]
    if bad:
        raise OptionError("environment", bad[0], "variable names of A-Z, 0-9 and _")
    certs = dict(certs or {})
    if certs and (set(certs) != set(CERT_FILES) or not all(_PEM.fullmatch(v.strip() + "\n") for v in certs.values())):
        raise OptionError("certs", sorted(certs), "PEM blocks for keyfile, certfile and cafile")
    refused = site.problems() + package_index_problems(package_index) + notebook_job_problems(notebook_job)
    if refused:
        raise OptionError.of(refused)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    template = env.from_string(BATCH_TEMPLATE.read_text())
    return template.render(
        user=request.user,
        home=request.home,
        output_path=request.output_path,
        log_path=request.log_path,
        log_folder=LOG_FOLDER,
        warn_minutes=" ".join(str(int(m)) for m in times.warn_minutes),
        save_before_end=int(times.save_before_end),
        extend_minutes=int(times.extend_minutes),
        job_name=request.job_name,
        job_options=sbatch_options(request.settings),
        export=",".join(names) if names else "NONE",
        command=shlex.join(command),
        before=[shlex.join(step) for step in before],
        certs={k: v.strip() for k, v in certs.items()},
        dask_worker_prefix=WORKER_JOB_PREFIX,
        prologue=[shlex.join(prologue_words(c) or []) for c in site.prologue],
        lmod_init=shlex.quote(site.lmod_init) if site.lmod_init else "",
        source_lmod=site.needs_lmod,
        port_range=site.port_range_text,
        package_index=shlex.quote(shlex.join(package_index)),
        gallery_dir=shlex.quote(gallery_dir) if gallery_dir else "",
        notebook_job=shlex.quote(json.dumps(dict(notebook_job), sort_keys=True)) if notebook_job is not None else "",
    )


def notebook_job_problems(preset: Mapping[str, Any] | None) -> list[tuple[str, Any, str]]:
    """The site's notebook-job preset refused unless it names job fields only, each with a value
    its rule accepts: (name, value, what is accepted), or none."""
    if preset is None:
        return []
    unknown = sorted(set(preset) - set(BY_NAME))
    if unknown:
        return [("notebook_job", unknown[0], f"a job field: one of {', '.join(BY_NAME)}")]
    return [(f"notebook_job.{name}", value, accepted) for name, value, accepted in problems(preset)]


def package_index_problems(options: Sequence[str]) -> list[tuple[str, Any, str]]:
    """The site's package index options (its site file's ``environments``, as
    ``EnvironmentsSettings.uv_options`` gives them), refused unless each is one of uv's index
    options, each URL or folder after its option: (name, value, what is accepted), or none."""
    try:
        index_options(options)
    except ValueError as e:
        return [
            (
                "package_index",
                list(options),
                f"uv's {', '.join(PACKAGE_INDEX_OPTIONS)}, each with its URL or folder ({e})",
            )
        ]
    return []
