"""The jobs the workbench started for people besides their JupyterLab: Dask worker jobs and
kernels in jobs of their own (both named after the session's job that started them) and notebook
batch jobs, read from one ``sacct`` call.

Pure: rows in, what the home page and the operator page show out.  Costs are core- and GPU-hours
so far, as accounting has them (running jobs: up to now).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aifactory_workbench.job import (
    KERNEL_JOB_PREFIX,
    NOTEBOOK_JOB_LIVE,
    WORKER_JOB_PREFIX,
    notebook_job_outputs,
    notebook_job_state,
    notebook_of_job,
    notebook_outputs_to_open,
    notebook_state_text,
)
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.formats import SACCT_WORKBENCH_JOBS
from aifactory_workbench.slurm.parsers import JobInfo, allocation, parse_tres, state_word
from aifactory_workbench.slurm.pending import queued_text, state_text
from aifactory_workbench.spawners.estimate import usage_hours

#: The sacct fields read for every workbench job (the list is slurm.formats's).
WORKBENCH_JOB_FIELDS = SACCT_WORKBENCH_JOBS.names
LIVE_STATES = ("PENDING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING")
#: How far back the home page lists notebook jobs.
NOTEBOOK_DAYS = 7


def state_of(row: dict[str, str]) -> str:
    """The row's sacct state without its detail ('CANCELLED by 1001' is CANCELLED)."""
    return state_word(row["State"])


def is_live(row: dict[str, str]) -> bool:
    return state_of(row) in LIVE_STATES


def started(row: dict[str, str]) -> bool:
    """Did the job start? (Accounting's Start is a time; "None" or "Unknown" for one that never ran.)"""
    return row["Start"][:1].isdigit()


def submitted_order(row: dict[str, str]) -> int:
    """A job's place in submission order: its id (an array's or a het job's leading number).
    sacct's own order is not it: a job cancelled while it waited comes before older ones."""
    digits = re.match(r"[0-9]+", row["JobID"])
    return int(digits.group()) if digits else 0


def cores_of(row: dict[str, str]) -> int:
    """The cores a job holds (AllocTRES), or asks for while it waits (ReqCPUS)."""
    held = parse_tres(row["AllocTRES"]).get("cpu", "")
    return int(held) if held.isdigit() else int(row["ReqCPUS"]) if row["ReqCPUS"].isdigit() else 0


def seconds_left_of(row: dict[str, str]) -> int | None:
    """A running job's time left when sacct read it (its limit less its elapsed time); None for
    one that has not started or has no limit."""
    limit = row["TimelimitRaw"]
    if state_of(row) != "RUNNING" or not limit.isdigit():
        return None
    return int(limit) * 60 - int(row["ElapsedRaw"] or 0)


@dataclass(frozen=True)
class WorkerGroup:
    """The Dask worker jobs that one job (a JupyterLab session or a notebook job) started."""

    user: str
    parent_job: str
    running: int
    pending: int
    cores: int  # held or asked for by the live ones
    core_hours: float  # all of them, ended ones included
    gpu_hours: float

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NotebookJob:
    user: str
    job_id: str
    state: str  # queued, running, done, cancelled, failed
    detail: str  # SLURM's state when failed: TIMEOUT, OUT_OF_MEMORY, FAILED...
    state_text: str  # as the page shows it: "cancelled", "failed (out of memory)"
    notebook: str
    result: str  # the executed notebook; "" while there can be none (queued, running, never started)
    log: str  # "" when the job never started (SLURM writes the log from its start)
    start: str
    end: str
    core_hours: float
    #: A queued job's reason and expected start in words (slurm/pending.py), "" for any other
    waiting: str = ""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def worker_groups(rows: list[dict[str, str]]) -> list[WorkerGroup]:
    """Dask worker jobs grouped by the job that started them, for groups with a live worker."""
    by_parent: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        if row["JobName"].startswith(WORKER_JOB_PREFIX):
            parent = row["JobName"][len(WORKER_JOB_PREFIX) :]
            by_parent.setdefault((row["User"], parent), []).append(row)
    groups = []
    for (user, parent), members in sorted(by_parent.items()):
        live = [r for r in members if is_live(r)]
        if not live:
            continue
        core, gpu = usage_hours(members)
        groups.append(
            WorkerGroup(
                user=user,
                parent_job=parent,
                running=sum(state_of(r) == "RUNNING" for r in live),
                pending=sum(state_of(r) == "PENDING" for r in live),
                cores=sum(cores_of(r) for r in live),
                core_hours=core,
                gpu_hours=gpu,
            )
        )
    return groups


def notebook_jobs(
    rows: list[dict[str, str]], queue: Mapping[str, JobInfo] | None = None, now: dt.datetime | None = None
) -> list[NotebookJob]:
    """Notebook batch jobs, newest first, with what became of each and where its output is; a
    queued one that ``queue`` (squeue's jobs, by id) holds says why it waits and when SLURM
    expects it to start, as the session's queued page does."""
    jobs = []
    for row in sorted(rows, key=submitted_order, reverse=True):
        notebook = notebook_of_job(row["JobName"], row["WorkDir"])
        if notebook is None:
            continue
        word, detail = notebook_job_state(row["State"])
        result, log = notebook_job_outputs(notebook, row["JobID"])
        # The hub cannot look into a home folder: what accounting says is what may be there.
        open_result, open_log = notebook_outputs_to_open(word, started(row), started(row))
        info = (queue or {}).get(row["JobID"]) if word == "queued" else None
        jobs.append(
            NotebookJob(
                user=row["User"],
                job_id=row["JobID"],
                state=word,
                detail=detail,
                state_text=notebook_state_text(word, detail),
                notebook=str(notebook),
                result=str(result) if open_result else "",
                log=str(log) if open_log else "",
                start=row["Start"],
                end=row["End"],
                core_hours=usage_hours([row])[0],
                waiting=queued_text(info.reason, info.start_time, now) if info is not None else "",
            )
        )
    return jobs


def queued_to_explain(rows: list[dict[str, str]]) -> list[str]:
    """The ids of the queued notebook jobs and kernels' jobs among ``rows``: those squeue is asked
    about (one call), for why each waits and when SLURM expects it to start."""
    return [
        r["JobID"]
        for r in rows
        if state_of(r) == "PENDING"
        and (notebook_of_job(r["JobName"], "/") is not None or r["JobName"].startswith(KERNEL_JOB_PREFIX))
    ]


@dataclass(frozen=True)
class KernelJob:
    """A live kernel in a job of its own (lab/slurm_kernel.py), as its session's card lists it."""

    user: str
    job_id: str
    session_job: str  # the JupyterLab job that started it
    partition: str
    node: str  # "" while it waits
    state: str  # queued, running (or SLURM's other live state, in lower case: suspended...)
    cores: int  # held, or asked for while it waits
    gpus: int
    seconds_left: int | None  # running, with a limit: when sacct read it
    time_left: str  # seconds_left in words (slurm/display.py), "" without one
    #: A queued one's reason and expected start in words (slurm/pending.py), "" for any other
    waiting: str = ""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def kernel_jobs(
    rows: list[dict[str, str]], queue: Mapping[str, JobInfo] | None = None, now: dt.datetime | None = None
) -> list[KernelJob]:
    """The queued and running kernels' jobs among ``rows``, oldest first; a queued one that
    ``queue`` (squeue's jobs, by id) holds says why it waits and when SLURM expects it to start,
    and how many GPUs it asks for (accounting names only those a job holds)."""
    jobs = []
    for row in sorted(rows, key=submitted_order):
        if not row["JobName"].startswith(KERNEL_JOB_PREFIX) or not is_live(row):
            continue
        word = state_of(row)
        info = (queue or {}).get(row["JobID"]) if word == "PENDING" else None
        left = seconds_left_of(row)
        jobs.append(
            KernelJob(
                user=row["User"],
                job_id=row["JobID"],
                session_job=started_by(row["JobName"]),
                partition=row["Partition"],
                node=row["NodeList"] if word == "RUNNING" else "",
                state=state_text(word),
                cores=cores_of(row),
                gpus=info.gpus if info is not None else allocation(row)[2],
                seconds_left=left,
                time_left=duration_text(left) if left is not None else "",
                waiting=queued_text(info.reason, info.start_time, now) if info is not None else "",
            )
        )
    return jobs


class NotCancelled(ValueError):
    """Why a job is not cancelled as a notebook job: an HTTP status and plain words."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def check_job_id(job_id: str) -> None:
    """A plain job number (what a notebook job's id is), or NotCancelled: nothing else reaches SLURM."""
    if not (job_id.isascii() and job_id.isdigit()):
        raise NotCancelled(400, f"{job_id!r} is not a job id (a number, as the list shows it)")


def notebook_job_to_cancel(rows: list[dict[str, str]], job_id: str, user: str) -> NotebookJob:
    """``user``'s queued or running notebook job ``job_id`` among ``rows`` (sacct's, of the user's
    last :data:`NOTEBOOK_DAYS` days: the jobs the home page lists), which the home page's Cancel
    may cancel. Which job is a notebook job and what state it is in are :func:`notebook_jobs`'s
    rule (``notebook_of_job``, ``notebook_job_state``); :class:`NotCancelled` says why not: not a
    job id, not one of the user's jobs, not a notebook job (a session, Dask workers), or ended."""
    check_job_id(job_id)
    row = next((r for r in rows if r["JobID"] == job_id and r["User"] == user), None)
    if row is None:
        raise NotCancelled(404, f"job {job_id} is not one of {user}'s jobs of the last {NOTEBOOK_DAYS} days")
    found = notebook_jobs([row])
    if not found:
        raise NotCancelled(
            400,
            f"job {job_id} is not a notebook job: a session ends with Stop My Server, Dask workers with Stop workers",
        )
    if found[0].state not in NOTEBOOK_JOB_LIVE:
        raise NotCancelled(409, f"job {job_id} has already ended ({found[0].state_text})")
    return found[0]


def in_home(path: str, home: str) -> str:
    """``path`` relative to ``home`` (for a JupyterLab link), or "" when it is not under it."""
    try:
        return str(Path(path).relative_to(home)) if home else ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class LiveJob:
    """One pending or running workbench job, as the operator page lists it."""

    kind: str  # JupyterLab, Dask worker, notebook job
    user: str
    account: str
    partition: str
    job_id: str
    state: str
    node: str
    cores: int
    gpus: int
    seconds_left: int | None  # None: no limit, or not started
    core_hours: float
    parent_job: str = ""  # a Dask worker's or a kernel's: the JupyterLab job that started it


def kind_of(job_name: str, session_job_name: str) -> str:
    if job_name == session_job_name:
        return "JupyterLab"
    if job_name.startswith(WORKER_JOB_PREFIX):
        return "Dask worker"
    if job_name.startswith(KERNEL_JOB_PREFIX):
        return "kernel"
    return "notebook job" if notebook_of_job(job_name, "/") is not None else ""


def started_by(job_name: str) -> str:
    """The JupyterLab job that started a Dask worker or a kernel's job ("" for any other)."""
    prefix = next((p for p in (WORKER_JOB_PREFIX, KERNEL_JOB_PREFIX) if job_name.startswith(p)), "")
    return job_name[len(prefix) :] if prefix else ""


def live_jobs(rows: list[dict[str, str]], session_job_name: str) -> list[LiveJob]:
    """The workbench's pending and running jobs among sacct ``rows`` (other jobs left out)."""
    jobs = []
    for row in rows:
        kind = kind_of(row["JobName"], session_job_name)
        if not kind or not is_live(row):
            continue
        started = state_of(row) == "RUNNING"
        jobs.append(
            LiveJob(
                kind=kind,
                user=row["User"],
                account=row["Account"],
                partition=row["Partition"],
                job_id=row["JobID"],
                state=state_of(row).lower(),
                node=row["NodeList"] if started else "",
                cores=cores_of(row),
                gpus=allocation(row)[2],
                seconds_left=seconds_left_of(row),
                core_hours=usage_hours([row])[0],
                parent_job=started_by(row["JobName"]),
            )
        )
    return jobs
