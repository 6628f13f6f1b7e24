"""What runs inside the JupyterLab job on the compute node: the batch script's template and
the launcher (``aifactory-singleuser``) it ends in.

Nothing of the hub's or the kernel's code runs here: the standard library, and
``cryptography`` (a dependency of JupyterHub's, in every venv the job runs from) for the
job's Dask credentials, imported only when they are made."""

import re
from collections.abc import Sequence
from pathlib import Path

#: Rendered by the hub's spawner (spawners/jobscript.py) from checked values only.
BATCH_TEMPLATE = Path(__file__).with_name("jupyterlab.sbatch.j2")
#: The launcher's name in the users' venv (pyproject.toml's [project.scripts]).
LAUNCHER = "aifactory-singleuser"
#: Copies the site's example notebooks into ~/examples on a first start (job/examples.py).
EXAMPLES_COMMAND = "aifactory-examples"

#: The only environment variables that reach the job from the hub: sudo keeps these and
#: resets every other (config/sudoers.in is rendered with this list, without SETENV), so a
#: compromised hub account cannot pass LD_PRELOAD & co. to a user's command.  sudo itself
#: sets USER, HOME, SHELL and PATH to the user's.
JOB_ENVIRONMENT = ("JUPYTERHUB_*", "JPY_API_TOKEN", "LANG", "DASK_DISTRIBUTED__DASHBOARD__LINK")

#: The site's package index as uv's options (the site file's ``environments``), which the job
#: script exports as one line of shell words: ``aifactory-env create`` installs from it unless its
#: command line names another (lab/envs.py).
PACKAGE_INDEX_ENV = "AIFACTORY_PACKAGE_INDEX"
#: The site's notebook-job preset (its site file's ``form.notebook_job``: job fields and their values),
#: which the job script exports as JSON: what ``aifactory-run-notebook`` and JupyterLab's "Run as
#: batch job" ask for unless told otherwise (lab/batch.py; the site file may be on the hub's host only).
NOTEBOOK_JOB_ENV = "AIFACTORY_NOTEBOOK_JOB"
#: The options it may hold, each with whether a value follows it.
PACKAGE_INDEX_OPTIONS = {"--index-url": True, "--extra-index-url": True, "--find-links": True, "--no-index": False}
_INDEX_VALUE = re.compile(r"[^\x00-\x1f\x7f-][^\x00-\x1f\x7f]*")


def index_options(words: Sequence[str]) -> list[tuple[str, str | None]]:
    """``words`` (uv's index options) as (option, value) pairs; ValueError names the first word
    that is not one of :data:`PACKAGE_INDEX_OPTIONS` or a value of one (no control character,
    not an option)."""
    pairs: list[tuple[str, str | None]] = []
    rest = list(words)
    while rest:
        option = rest.pop(0)
        if option not in PACKAGE_INDEX_OPTIONS:
            raise ValueError(f"{option!r} is not one of {', '.join(PACKAGE_INDEX_OPTIONS)}")
        value = rest.pop(0) if PACKAGE_INDEX_OPTIONS[option] and rest else None
        if PACKAGE_INDEX_OPTIONS[option] and (value is None or not _INDEX_VALUE.fullmatch(value)):
            raise ValueError(f"{option} needs a URL or folder, not {value!r}")
        pairs.append((option, value))
    return pairs


#: Dask worker jobs started in job N are named "aifw-dask-N": the spawner cancels a JupyterLab
#: job's when it ends (config/sudoers.in lets the hub cancel exactly those), and a notebook job
#: cancels its own (lab/batch.py).
WORKER_JOB_PREFIX = "aifw-dask-"

#: A kernel that runs in a job of its own (lab/slurm_kernel.py), started from JupyterLab job N, is
#: named "aifw-kernel-N": the operator page lists it with the job that started it.
KERNEL_JOB_PREFIX = "aifw-kernel-"

#: Notebook batch jobs (aifactory-run-notebook) are named "aifw-nb-<notebook's stem>"; the hub's
#: home page and ``aifactory-run-notebook status`` find them by it.
NOTEBOOK_JOB_PREFIX = "aifw-nb-"
#: What a notebook job's SLURM state means to its owner; any other state is "failed".
NOTEBOOK_JOB_STATES = {"PENDING": "queued", "RUNNING": "running", "COMPLETED": "done", "CANCELLED": "cancelled"}
#: The words of a notebook job that has not ended: it has no executed notebook to open yet.
NOTEBOOK_JOB_LIVE = ("queued", "running")


def notebook_job_state(sacct_state: str) -> tuple[str, str]:
    """What became of a notebook job, from SLURM's state ("CANCELLED by 1001" is CANCELLED): its
    word (queued, running, done, cancelled, failed) and, for a failed one, SLURM's reason
    (TIMEOUT, OUT_OF_MEMORY, FAILED...; "" otherwise)."""
    state = sacct_state.split()[0] if sacct_state.strip() else ""
    word = NOTEBOOK_JOB_STATES.get(state, "failed")
    return word, state if word == "failed" else ""


def notebook_state_text(word: str, detail: str) -> str:
    """The state as every page shows it: "done", "cancelled", "failed (out of memory)"; the
    hub's home page and JupyterLab's panel render this text, neither derives its own."""
    said = detail.lower().replace("_", " ")
    return f"{word} ({said})" if said and said != word else word


def notebook_outputs_to_open(word: str, result_there: bool, log_there: bool) -> tuple[bool, bool]:
    """Which of a notebook job's outputs a page offers to open: the log once it is there (SLURM
    writes it from the job's start), the executed notebook once it is there and the job has
    ended (a job cancelled while queued has neither)."""
    return result_there and word not in NOTEBOOK_JOB_LIVE, log_there


def notebook_job_outputs(notebook: Path, job_id: str) -> tuple[Path, Path]:
    """Where notebook job ``job_id`` writes the executed notebook and its log: next to the
    original, named after the job (``analysis-job1234.ipynb``, ``analysis-job1234.log``)."""
    stem = notebook.with_suffix("")
    return Path(f"{stem}-job{job_id}.ipynb"), Path(f"{stem}-job{job_id}.log")


def notebook_of_job(job_name: str, workdir: str) -> Path | None:
    """The notebook a job of this name and working folder runs (None: not a notebook job)."""
    if not job_name.startswith(NOTEBOOK_JOB_PREFIX):
        return None
    return Path(workdir) / f"{job_name[len(NOTEBOOK_JOB_PREFIX) :]}.ipynb"
