"""A job's wait and end in words: why SLURM holds it (its pending reason), when SLURM expects it
to start, and how it ended (:func:`describe_end`, from accounting). One rule for every page that
shows a job: the JupyterLab session's queued page and home card (spawners/), the spawn form's
estimate, notebook jobs in JupyterLab's panel and ``aifactory-run-notebook status``, and a
kernel's job in JupyterLab's status bar (lab/, which may not import spawners/) as on the hub's
home page. Pure: the standard library, slurm/parsers.py's records and slurm/display.py (the wait
in words, as every page words a duration).
"""

from __future__ import annotations

import datetime as dt

from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.parsers import JobRecord


def state_text(state: str) -> str:
    """A live job's state as the pages word it: "queued" for SLURM's PENDING, else SLURM's own
    word in lower case ("running", "completing")."""
    return "queued" if state == "PENDING" else state.lower()


#: SLURM's pending reasons (squeue's %r) in words a user understands.
PENDING_WORDS = {
    "Resources": "waiting for free CPUs, memory or GPUs",
    "Priority": "waiting for jobs with higher priority to start first",
    "ReqNodeNotAvail": "the nodes it needs are down or reserved",
    "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions": (
        "the nodes it needs are down, drained or reserved"
    ),
    "QOSMaxJobsPerUserLimit": "you already run as many jobs as this QoS allows at once",
    "QOSMaxWallDurationPerJobLimit": "the walltime asked for is longer than this QoS allows",
    "PartitionTimeLimit": "the walltime asked for is longer than the partition allows",
    "AssocGrpCPULimit": "your account's CPU limit is reached",
    "AssocGrpGRES": "your account's GPU limit is reached",
    "AssocGrpJobsLimit": "your account's job limit is reached",
    "AssocGrpCPUMinutesLimit": "your account's CPU-hour budget is used up",
    "AssocGrpBillingMinutes": "your account's budget is used up",
    "Reservation": "waiting for its reservation to start",
    "Dependency": "waiting for another job to finish",
    "BeginTime": "scheduled to start later",
    "JobHeldUser": "held by you",
    "JobHeldAdmin": "held by an administrator",
    # SLURM has not looked at the job yet (just submitted): no promise of an early start, which the
    # estimated start that follows may contradict (issue 36: "about to start; estimated start 01:48").
    "None": "waiting for the scheduler to place it",
}


def explain_pending(reason: str) -> str:
    """SLURM's pending reason in words a user understands (SLURM's own word if unknown)."""
    return PENDING_WORDS.get(reason, f"SLURM says: {reason}")


def start_text(start: str, now: dt.datetime | None = None) -> str:
    """SLURM's expected start (local ISO time) in words."""
    try:
        when = dt.datetime.fromisoformat(start)
    except ValueError:
        return f"SLURM expects it to start at {start}."
    wait = (when - (now or dt.datetime.now())).total_seconds()
    if wait <= 30:
        return "SLURM expects it to start now."
    return f"SLURM expects it to start at {when:%Y-%m-%d %H:%M} (in about {duration_text(wait)})."


def queued_text(reason: str, start: str, now: dt.datetime | None = None) -> str:
    """Why a queued job waits and, when SLURM has an estimate (squeue's %S: a local ISO time; N/A
    or Unknown while it has none), when it expects it to start: "waiting for free CPUs, memory
    or GPUs; SLURM expects it to start at 2026-11-27 16:40 (in about 12 min)." No reason yet
    (just submitted) reads as the scheduler not having placed it."""
    why = explain_pending(reason or "None")
    if not start[:1].isdigit():
        return f"{why}."
    return f"{why}; {start_text(start, now)}"


def describe_end(record: JobRecord) -> str:
    """A user-facing sentence for how a job ended, from accounting."""
    reasons = {
        "TIMEOUT": "it reached its walltime limit",
        "CANCELLED": "it was cancelled",
        "OUT_OF_MEMORY": "it ran out of memory",
        "NODE_FAIL": "its compute node failed",
        "PREEMPTED": "it was preempted by a higher-priority job",
        "BOOT_FAIL": "its compute node failed to boot",
        "DEADLINE": "it reached its deadline",
        "FAILED": f"it failed (exit code {record.exit_code})",
        "COMPLETED": f"it ended (exit code {record.exit_code})",
    }
    if record.out_of_memory:
        used = (
            f": it used {record.max_rss_mb} MB of the {record.req_mem_mb} MB it asked for" if record.max_rss_mb else ""
        )
        return f"it ran out of memory{used}. Ask for more memory when you start it again"
    text = reasons.get(record.state, f"it ended in state {record.state}")
    if record.reason and record.reason not in {"None", ""}:
        text += f"; SLURM's reason: {record.reason}"
    return text
