"""The JupyterLab job: what a user may ask for, and the batch script that asks SLURM.

Only values that passed the site config's rules reach the template, so no user string
can add a line, an ``#SBATCH`` directive or a shell word to the script.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import jinja2

from aifactory.dask_config import WORKER_JOB_PREFIX
from aifactory.site_config import Rule, SlurmSettings

TEMPLATE = Path(__file__).with_name("templates") / "jupyterlab.sbatch.j2"
#: Options a user may set when starting a server (checked again against the cluster: choices.py).
USER_OPTIONS = ("partition", "account", "qos", "reservation", "cpus", "memory", "gpus", "walltime")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
#: One PEM block: nothing in it can end the script's here-document or run as shell.
_PEM = re.compile(r"(-----BEGIN [A-Z ]+-----\n[A-Za-z0-9+/=\n]+-----END [A-Z ]+-----\n?)+")
#: internal_ssl: the server's key, certificate and CA, written by the job into a private folder.
CERT_FILES = ("keyfile", "certfile", "cafile")
_HOME = re.compile(r"/[A-Za-z0-9_./-]*")


class OptionError(ValueError):
    """A requested option is not acceptable; the message names field, value and rule."""

    def __init__(self, name: str, value: Any, accepted: str) -> None:
        super().__init__(f"{name}: {value!r} is not accepted; allowed: {accepted}")
        self.field = name


def _rules() -> dict[str, Rule]:
    return {f.name: f.metadata["rule"] for f in fields(SlurmSettings)}


@dataclass(frozen=True)
class JobRequest:
    """Everything the batch script is rendered from."""

    user: str
    home: str
    slurm: SlurmSettings

    @classmethod
    def build(cls, user: str, home: str, defaults: SlurmSettings, options: Mapping[str, Any]) -> JobRequest:
        """The site's defaults with the user's options applied; refuse anything else."""
        unknown = sorted(set(options) - set(USER_OPTIONS))
        if unknown:
            raise OptionError(unknown[0], options[unknown[0]], f"one of the options {', '.join(USER_OPTIONS)}")
        rules = _rules()
        for name, value in options.items():
            if not rules[name].check(value):
                raise OptionError(name, value, rules[name].accepted)
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]*", user):
            raise OptionError("user", user, "a Unix user name")
        if not _HOME.fullmatch(home) or ".." in home.split("/"):
            raise OptionError("home", home, "an absolute path without '..'")
        merged = replace(defaults, **dict(options))
        for name, rule in rules.items():  # defaults too: traits may be set without the site file
            if not rule.check(getattr(merged, name)):
                raise OptionError(name, getattr(merged, name), rule.accepted)
        return cls(user=user, home=home, slurm=merged)

    @property
    def log_path(self) -> str:
        return f"{self.home.rstrip('/')}/.aifactory-jupyterlab-%j.log"


def render(
    request: JobRequest, command: Iterable[str], export: Iterable[str], certs: Mapping[str, str] | None = None
) -> str:
    """The batch script: ``command`` runs as the job's main process with ``export`` env.

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
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    template = env.from_string(TEMPLATE.read_text())
    s = request.slurm
    return template.render(
        user=request.user,
        home=request.home,
        log_path=request.log_path,
        job_name=s.job_name,
        partition=s.partition,
        account=s.account,
        qos=s.qos,
        reservation=s.reservation,
        cpus=s.cpus,
        memory=s.memory,
        gpus=s.gpus,
        walltime=s.walltime,
        export=",".join(names) if names else "NONE",
        command=shlex.join(command),
        certs={k: v.strip() for k, v in certs.items()},
        dask_worker_prefix=WORKER_JOB_PREFIX,
    )
