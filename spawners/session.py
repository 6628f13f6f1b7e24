"""A user's session as the hub's home page shows it: one card per server, from the watcher's
last squeue (no scheduler call of its own), and the sentence that ends a stopped job.

Pure functions of what the spawner knows; ``spawner.WorkbenchSpawner.session_card`` calls them.
"""

from __future__ import annotations

from typing import Any

from aifactory_workbench.slurm.display import duration_text, hours_text
from aifactory_workbench.slurm.parsers import JobInfo, JobRecord
from aifactory_workbench.slurm.values import parse_duration
from aifactory_workbench.spawners.messages import explain_pending


def home_relative(path: str, home: str) -> str:
    """``/home/alice/.aifactory/logs/x.log`` as ``~/.aifactory/logs/x.log``."""
    home = home.rstrip("/")
    return "~" + path[len(home) :] if home and path.startswith(home + "/") else path


def seconds_left(info: JobInfo, taken_at: float, now: float) -> float | None:
    """squeue's TimeLeft, counted down from the moment squeue said it."""
    left = parse_duration(info.time_left) if info.is_running else None
    return None if left is None else max(0.0, left - max(0.0, now - taken_at))


def card(
    info: JobInfo | None,
    *,
    job_id: str,
    position: str,
    ready: bool,
    stopping: bool,
    taken_at: float,
    now: float,
    log: str,
    home: str,
) -> dict[str, Any]:
    """What the home page shows of one server's job: its state in words, where it runs and with
    what, the time left, and its log (``~``-relative)."""
    if stopping:
        state = "ending"
    elif info is None:
        state = "submitted"
    elif info.is_pending:
        state = "queued"
    else:
        state = "running" if ready else "starting"
    left = seconds_left(info, taken_at, now) if info is not None else None
    shown_log = home_relative(log, home)
    return {
        "state": state,
        "job_id": job_id,
        "position": position if state == "queued" else "",
        "waiting_because": explain_pending(info.reason) if info is not None and info.is_pending else "",
        "node": info.node if info is not None and info.is_running else "",
        "partition": info.partition if info is not None else "",
        "account": info.account if info is not None else "",
        "cpus": info.cpus if info is not None else "",
        "memory": info.memory if info is not None else "",
        "gpus": info.gpus if info is not None else 0,
        "seconds_left": None if left is None else round(left),
        "time_left": "" if left is None else duration_text(left),
        "log": shown_log,
        "log_in_home": shown_log[2:] if shown_log.startswith("~/") else "",
    }


def stopped_text(job_id: str, record: JobRecord | None) -> str:
    """After a stop: what happened to the job, and what it cost, as accounting says."""
    if record is None:
        return f"Your JupyterLab job {job_id} was cancelled."
    if record.elapsed_s == 0:
        return f"Your JupyterLab job {job_id} was cancelled before it started; it used no core-hours."
    gpu = f" and {hours_text(record.gpu_hours)} GPU-hours" if record.alloc_gpus else ""
    return (
        f"Your JupyterLab job {job_id} was cancelled after {duration_text(record.elapsed_s)}; "
        f"it used {hours_text(record.core_hours)} core-hours{gpu}."
    )
