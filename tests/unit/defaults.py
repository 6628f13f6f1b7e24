"""The shipped defaults (hub/defaults.yaml), whatever site file this machine has, as the
unit tests use them."""

import yaml

from aifactory_workbench.hub.site import load_defaults
from aifactory_workbench.slurm.job_fields import USER_OPTIONS, JobSettings
from aifactory_workbench.spawners.jobscript import JobRequest

DEFAULTS = load_defaults()
JOB = JobSettings(**{name: getattr(DEFAULTS.slurm, name) for name in USER_OPTIONS})
JOB_NAME = DEFAULTS.slurm.job_name


def request(options: dict | None = None, user: str = "alice", home: str = "/home/alice", job: JobSettings = JOB):
    return JobRequest.build(user, home, JOB_NAME, job, options or {})


#: The public URL unit tests' site files have unless they name one (the defaults need it).
PUBLIC_URL = "https://hub.example.eu/"


def site_file(directory, text: str):
    """A site file with ``text``, plus hub.public_url where the text sets none (a site must)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None  # a test of a malformed file: written as it is
    if isinstance(data, dict) and isinstance(data.get("hub", {}), dict) and "public_url" not in data.get("hub", {}):
        data.setdefault("hub", {})["public_url"] = PUBLIC_URL
        text = yaml.safe_dump(data)
    path = directory / "site.yaml"
    path.write_text(text)
    return path
