"""What the hub keeps of a user's JupyterLab job across its own restarts: one versioned record,
the spawner's state in JupyterHub's database (``Spawner.get_state`` / ``load_state``).

Version 1 (before the record had a version) wrote the same keys loose; it is read as version 2
with one difference: a job recorded without ``started`` had started (the key came later).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: The version written; :meth:`JobState.from_state` reads this one and every earlier one.
STATE_VERSION = 2


class StateVersionError(ValueError):
    """The database holds a state written by a newer workbench, which this one cannot read."""


@dataclass(frozen=True)
class JobState:
    """A server's job as the hub remembers it: the job (while there is one), what the user's next
    page says of the last one that ended, and the last options that passed every check."""

    job_id: str = ""
    job_status: str = ""  # batchspawner's own key
    submitted_at: float = 0.0  # the hub's clock at sbatch: squeue snapshots older than that say nothing of the job
    started: bool = False  # JupyterLab answered (a hub restart resumes a start that had not)
    token_sha256: str = ""  # the job's API token, hashed: after a restart the hub has no plain copy
    port: int = 0
    ip: str = ""  # the node's address, once the job runs
    log_path: str = ""
    last_end: str = ""  # why the last job ended, for the user's next page
    last_log: str = ""  # and where that job's log is
    accepted_options: dict[str, Any] = field(default_factory=dict)

    #: Kept while the server has a job; the others outlive it.
    JOB_KEYS = ("job_id", "job_status", "submitted_at", "started", "token_sha256", "port", "ip", "log_path")

    def without_job(self) -> JobState:
        """What outlives the job: the record with every one of :attr:`JOB_KEYS` cleared."""
        kept: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.JOB_KEYS}
        return JobState(**kept)

    def as_state(self) -> dict[str, Any]:
        """The record for the database: its version, the job's keys while there is a job, and
        the others when they hold something."""
        kept = {
            key: value for key, value in asdict(self).items() if (self.job_id if key in self.JOB_KEYS else bool(value))
        }
        return {"version": STATE_VERSION, **kept} if kept else {}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> JobState:
        """The record from the database, of any version up to this one (``{}``: none yet)."""
        version = int(state.get("version", 1))
        if version > STATE_VERSION:
            raise StateVersionError(
                f"the hub's database holds a server state of version {version}, written by a newer "
                f"workbench; this one reads up to version {STATE_VERSION}"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in state.items() if k in known}
        if version == 1 and values.get("job_id") and "started" not in values:
            values["started"] = True  # written before the key existed: the job had started
        return cls(
            job_id=str(values.get("job_id", "")),
            job_status=str(values.get("job_status", "")),
            submitted_at=float(values.get("submitted_at", 0.0) or 0.0),
            started=bool(values.get("started", False)),
            token_sha256=str(values.get("token_sha256", "")),
            port=int(values.get("port", 0) or 0),
            ip=str(values.get("ip", "")),
            log_path=str(values.get("log_path", "")),
            last_end=str(values.get("last_end", "")),
            last_log=str(values.get("last_log", "")),
            accepted_options=dict(values.get("accepted_options", {}) or {}),
        )
