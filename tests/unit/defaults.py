"""The shipped defaults (hub/defaults.yaml), whatever site file this machine has, as the
unit tests use them."""

from hub.site import load_defaults
from spawners.jobscript import USER_OPTIONS, JobRequest, JobSettings

DEFAULTS = load_defaults()
JOB = JobSettings(**{name: getattr(DEFAULTS.slurm, name) for name in USER_OPTIONS})
JOB_NAME = DEFAULTS.slurm.job_name


def request(options: dict | None = None, user: str = "alice", home: str = "/home/alice", job: JobSettings = JOB):
    return JobRequest.build(user, home, JOB_NAME, job, options or {})
