"""More time for a running JupyterLab job: the root-owned helper that the hub asks through sudo.

Users cannot raise their own job's time limit in SLURM; root can, past every limit. So the hub
account may run exactly this helper as root (one rule in config/sudoers.in, ``USER JOBID
MINUTES``), and the helper trusts nothing the hub says: it reads the job from SLURM and refuses
unless the site allows extensions (``singleuser.extend`` in the site file, whose path
``aifactory-site install`` writes into the wrapper, never taken from the environment), the job
runs, belongs to USER and carries the site's JupyterLab job name (not a Dask worker job, not a
job of the user's own), MINUTES is within the site's step, the extensions of this job stay
within the site's total (a ledger in a folder only root may enter), and the new limit is within
every walltime limit SLURM would hold a job to: the job's QoS ``MaxWall``, its partition's
``MaxTime``, the partition's own QoS's ``MaxWall`` and the ``MaxWall`` of the job's association
(user, account and partition, else user and account). Only then does it run ``scontrol
update JobId=N TimeLimit=...``.

It answers one line of JSON on standard output (``{"job_id", "old_limit", "new_limit",
"seconds_left", "added"}``, or ``{"message"}`` when it refuses) and an exit status the hub
maps to HTTP (hub/extend.py). :func:`decide` is the whole decision, without I/O.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aifactory_workbench.hub.site import SiteConfigError, load_defaults, load_site_config
from aifactory_workbench.slurm.admin import SlurmAdmin
from aifactory_workbench.slurm.client import EXTEND_HELPER, SECURE_PATH, Slurm, squeue_argv
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.slurm.formats import SQUEUE_EXTEND
from aifactory_workbench.slurm.parsers import SlurmError, SlurmUnavailable, parse_one_job
from aifactory_workbench.slurm.values import format_duration, is_unix_user, parse_duration

#: Exit statuses; any other (sudo's own refusal is 1) is a fault of the installation.
EXTENDED = 0
USAGE = 2
OFF = 20  # the site offers no extensions
NO_SUCH_JOB = 21  # gone, not USER's, or not a JupyterLab job: the hub is told no more
NOT_RUNNING = 22
POLICY = 23  # the site's step or total
LIMIT = 24  # a walltime limit of SLURM's: a QoS's MaxWall, the partition's MaxTime, the association's
UNAVAILABLE = 25  # SLURM did not answer, or refused the update
BUSY = 26  # another extension holds the ledger
OFF_MESSAGE = "this site does not extend sessions (singleuser.extend: off)"
BUSY_MESSAGE = "another extension of this job is being made"
#: The helper's bound, so that the hub (which waits longer: hub/extend.py) never gives up on a
#: helper that then extends: each SLURM call ends within SLURM_TIMEOUT seconds, an extension
#: makes at most SLURM_CALLS of them, and the ledger's lock is waited for at most LOCK_WAIT.
SLURM_TIMEOUT = 10.0
SLURM_CALLS = 7  # squeue, scontrol show job and partition, sacctmgr for two QoS and the association, update
LOCK_WAIT = 10.0
#: Where root keeps how much each job was extended (a file per job id), made by the helper.
LEDGER_DIR = Path("/var/lib/aifactory-extend")
#: Ledger entries older than this are removed (their jobs ended long ago).
LEDGER_DAYS = 30


@dataclass(frozen=True)
class Policy:
    """``singleuser.extend`` of the site file, in minutes: at most ``step`` per extension and
    ``total`` for the life of a job."""

    step: int
    total: int


@dataclass(frozen=True)
class Extension:
    """What the helper does: the job's limit from ``old`` to ``new`` seconds."""

    job_id: str
    old: int
    new: int
    seconds_left: int
    added: int  # minutes, this job's extensions with this one

    def as_data(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "old_limit": format_duration(self.old),
            "new_limit": format_duration(self.new),
            "seconds_left": self.seconds_left,
            "added_minutes": self.added,
        }


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def decide(
    job: Mapping[str, str] | None,
    *,
    user: str,
    minutes: int,
    policy: Policy | None,
    job_name: str,
    limits: Sequence[tuple[str, int | None]],
    added_before: int,
) -> Extension | Refusal:
    """The whole decision. ``job``: squeue's row in
    :data:`~aifactory_workbench.slurm.formats.SQUEUE_EXTEND` (None: SLURM does not hold it);
    ``policy``: None when the site offers no extensions; ``limits``: SLURM's walltime limits on
    the job as (what it is, "the QoS normal"; seconds, None for no limit), the new limit must be
    within each and a refusal names the smallest; ``added_before``: minutes this job was
    extended already."""
    if policy is None:
        return Refusal(OFF, OFF_MESSAGE)
    if job is None or job["user"] != user or job["name"] != job_name:
        return Refusal(NO_SUCH_JOB, f"{user} has no running JupyterLab job of that id")
    job_id = job["job_id"]
    if job["state"] != "RUNNING":
        return Refusal(NOT_RUNNING, f"job {job_id} is {job['state'].lower()}, not running")
    if not 1 <= minutes <= policy.step:
        return Refusal(POLICY, f"the site allows from 1 min to {duration_text(policy.step * 60)} per extension")
    if added_before + minutes > policy.total:
        return Refusal(
            POLICY,
            f"the site allows at most {duration_text(policy.total * 60)} of extensions per session "
            f"({duration_text(added_before * 60)} added already)",
        )
    old = parse_duration(job["time_limit"])
    ran = parse_duration(job["time_used"]) or 0
    if old is None:
        return Refusal(LIMIT, f"job {job_id} has no time limit to extend")
    new = old + minutes * 60
    set_limits = [(most, what) for what, most in limits if most is not None]
    if set_limits and new > min(set_limits)[0]:
        most, what = min(set_limits)
        return Refusal(LIMIT, f"{what} allows at most {duration_text(most)}")
    return Extension(job_id, old, new, max(0, new - ran), added_before + minutes)


# -- the I/O around it ----------------------------------------------------------------------
def site_policy(site_file: str) -> tuple[Policy | None, str, str]:
    """The site's policy, JupyterLab job name and folder of SLURM's commands, from a root-owned
    site file ("": the defaults)."""
    if site_file:
        root_owned(Path(site_file))
    site = load_site_config(site_file) if site_file else load_defaults()
    minutes = site.singleuser.extend_minutes
    return (Policy(*minutes) if minutes else None), site.slurm.job_name, site.slurm.bin_dir


def root_owned(path: Path) -> None:
    """Refuse a file (or its folder) that is a link, or that anyone but root may change."""
    for item in (path, path.parent):
        info = os.lstat(item)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise SiteConfigError(f"{item} is not root's alone: refusing to read the site's policy from it")


def job_limits(slurm: Slurm, job: Mapping[str, str], job_name: str) -> list[tuple[str, int | None]]:
    """Every walltime limit SLURM holds the job to, for :func:`decide` (each asked of SLURM in
    the SLURM layer's formats: slurm/admin.py)."""
    admin = SlurmAdmin(slurm)
    partition = job["partition"]
    partition_most, partition_qos = admin.partition_max_time(partition)
    limits = [(f"the QoS {job['qos']}", admin.qos_max_wall(job["qos"])), (f"the partition {partition}", partition_most)]
    if partition_qos:
        limits.append((f"the partition {partition}'s QoS {partition_qos}", admin.qos_max_wall(partition_qos)))
    account = admin.job_account(job["job_id"], job_name)
    limits.append(("your association", admin.association_max_wall(job["user"], account, partition)))
    return limits


def read_job(slurm: Slurm, job_id: str) -> dict[str, str] | None:
    try:
        out = slurm.run_blocking(squeue_argv("-j", job_id, form=SQUEUE_EXTEND)).stdout
    except SlurmError as e:
        if isinstance(e, SlurmUnavailable) or "Invalid job id" not in str(e):
            raise
        return None
    return parse_one_job(out, job_id, SQUEUE_EXTEND)


class LedgerBusy(Exception):
    """Another extension held the ledger's lock for all of :data:`LOCK_WAIT`."""


class Ledger:
    """Minutes added per job, in a folder of root's alone (made 0700 if missing); held locked
    while a decision is made, so that two extensions of a job cannot both pass the total (the
    lock is waited for at most :data:`LOCK_WAIT` seconds, then :class:`LedgerBusy`). Every
    file is opened relative to the folder's descriptor, never following a link."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        info = os.fstat(self.fd)
        if info.st_uid != 0 or info.st_mode & 0o077:
            os.close(self.fd)
            raise PermissionError(f"{folder} must be root's alone (0700)")
        given_up = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= given_up:
                    os.close(self.fd)
                    raise LedgerBusy(BUSY_MESSAGE) from None
                time.sleep(0.1)

    def added(self, job_id: str) -> int:
        try:
            fd = os.open(job_id, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=self.fd)
        except FileNotFoundError:
            return 0
        with os.fdopen(fd) as f:
            text = f.read().strip()
        return int(text) if text.isdigit() else 0

    def write(self, job_id: str, minutes: int) -> None:
        temporary = f".{job_id}.new"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(temporary, flags, 0o600, dir_fd=self.fd)
        with os.fdopen(fd, "w") as f:
            f.write(f"{minutes}\n")
        os.replace(temporary, job_id, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def forget_old(self, now: float) -> None:
        for name in os.listdir(self.fd):
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if now - info.st_mtime > LEDGER_DAYS * 86400:
                os.unlink(name, dir_fd=self.fd)

    def close(self) -> None:
        os.close(self.fd)  # and the lock with it


def extend(slurm: Slurm, user: str, job_id: str, minutes: int, site_file: str, ledger_dir: Path) -> Extension | Refusal:
    policy, job_name, slurm.bin_dir = site_policy(site_file)
    if policy is None:
        return Refusal(OFF, OFF_MESSAGE)
    try:
        ledger = Ledger(ledger_dir)
    except LedgerBusy:
        return Refusal(BUSY, BUSY_MESSAGE)
    try:
        job = read_job(slurm, job_id)
        limits: list[tuple[str, int | None]] = []
        if job is not None and job["state"] == "RUNNING" and job["user"] == user and job["name"] == job_name:
            limits = job_limits(slurm, job, job_name)
        found = decide(
            job,
            user=user,
            minutes=minutes,
            policy=policy,
            job_name=job_name,
            limits=limits,
            added_before=ledger.added(job_id),
        )
        if isinstance(found, Extension):
            slurm.run_blocking(["scontrol", "update", f"JobId={job_id}", f"TimeLimit={format_duration(found.new)}"])
            ledger.write(job_id, found.added)
            ledger.forget_old(time.time())
        return found
    finally:
        ledger.close()


def parse_args(args: Sequence[str]) -> tuple[str, str, int] | None:
    """USER JOBID MINUTES, each as sudo's rule lets it through; None for anything else."""
    if len(args) != 3 or not is_unix_user(args[0]) or not args[1].isdigit() or not args[2].isdigit():
        return None
    if not (args[1].isascii() and args[2].isascii()) or len(args[2]) > 6:
        return None
    return args[0], args[1], int(args[2])


def main(site_file: str, ledger_dir: str = str(LEDGER_DIR), argv: Sequence[str] | None = None) -> int:
    parsed = parse_args(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        print(json.dumps({"message": f"usage: {EXTEND_HELPER} USER JOBID MINUTES"}))
        return USAGE
    user, job_id, minutes = parsed
    os.environ["PATH"] = SECURE_PATH  # the commands below are root's, wherever the hub looked
    try:
        found = extend(Slurm(timeout=SLURM_TIMEOUT), user, job_id, minutes, site_file, Path(ledger_dir))
    except SlurmError as e:
        found = Refusal(UNAVAILABLE, f"SLURM did not answer: {e}")
    except SiteConfigError as e:
        found = Refusal(OFF, f"the site's policy cannot be read: {e}")
    except OSError as e:
        found = Refusal(UNAVAILABLE, f"the extension's ledger cannot be used: {e}")
    if isinstance(found, Refusal):
        message = " ".join(found.message.split())  # one line, whatever an error said
        print(json.dumps({"message": message}))
        print(f"{EXTEND_HELPER}: refused: {message}", file=sys.stderr)
        return found.status
    print(json.dumps(found.as_data()))
    return EXTENDED
