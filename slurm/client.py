"""The one place where the workbench runs SLURM commands.

Every command is an argument list (never a shell line), so no value can be read by a
shell; commands run on behalf of a user go through ``sudo -n -u USER``, which is how the
hub reaches SLURM as each user.  Every command is counted for the hub's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from aifactory_workbench.job import WORKER_JOB_PREFIX
from aifactory_workbench.slurm.formats import (
    SACCT_OUTCOME,
    SACCT_RECORDS,
    SACCT_USAGE,
    SACCTMGR_ASSOCIATIONS,
    SACCTMGR_QOS_LIMITS,
    SQUEUE_JOBS,
    SQUEUE_POSITIONS,
    UNIT_SEPARATOR,
    Format,
    sacct,
    sacctmgr_argv,
)
from aifactory_workbench.slurm.parsers import (
    JobInfo,
    JobRecord,
    SlurmError,
    SlurmUnavailable,
    clean_error,
    parse_associations,
    parse_positions,
    parse_rows,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_oneliner,
    parse_scontrol_records,
    parse_squeue,
    parse_test_only,
)
from aifactory_workbench.slurm.values import is_unix_user, parse_duration

log = logging.getLogger(__name__)

#: Every command run, by name: the hub's load on SLURM, at /hub/metrics.
COMMANDS = Counter("aifactory_slurm_commands", "SLURM commands run by the hub", ["command"])
#: Of those, each ``sbatch --test-only`` (the form's estimates and their alternatives), on its own.
TEST_ONLY = Counter("aifactory_slurm_test_only", "sbatch --test-only runs by the hub (estimates, alternatives)")

#: The root-owned helper that extends a running JupyterLab job (root/extend_job.py), in PREFIX/libexec:
#: ``aifactory-site install`` writes it there and sudo's rule names it.
EXTEND_HELPER = "aifactory-extend-job"

#: What slurm clients print when slurmctld cannot be reached (as opposed to a refusal).
_UNAVAILABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|slurm_load_jobs error: Unexpected message"
    r"|Unable to connect to database|slurmdbd: Connection refused",
    re.IGNORECASE,
)


#: Root's folder beside the venv, where ``aifactory-site install`` writes the helpers that sudo's
#: rules name (config/sudoers.in): each checks its own arguments, so no rule needs a pattern.
LIBEXEC = Path(sys.prefix).parent / "libexec"
#: ``aifactory-env list --json`` as a user, through sudo (AIFW_ENVS): a root-owned wrapper whose
#: Python runs isolated (``-I``) from the user's files and variables.
ENV_LIST = LIBEXEC / "aifactory-env-list"
#: The password helper (root/check_password.py), which the hub asks as root through sudo (AIFW_PASSWORD).
PASSWORD_HELPER = LIBEXEC / "aifactory-check-password"
#: scancel as a user, through sudo (AIFW_CANCEL): root's wrapper lets through only what the hub
#: cancels (:func:`cancel_arguments_ok`), then runs SLURM's scancel, whose path install wrote in it.
CANCEL_HELPER = LIBEXEC / "aifactory-cancel"
#: Where SLURM's commands are found when the site file names no folder (``slurm.bin_dir``):
#: root's folders, the same for the hub, root's helpers and ``aifactory-site install``, which
#: writes the paths it finds into sudo's rules (the hub runs exactly those paths).
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The SLURM commands the workbench runs, by name (each resolved by :func:`slurm_command`).
SLURM_COMMANDS = frozenset({"sbatch", "scancel", "squeue", "sacct", "sacctmgr", "scontrol", "sinfo", "srun"})
_WORKER_JOB_NAME = re.compile(re.escape(WORKER_JOB_PREFIX) + "[0-9]{1,12}")


@functools.lru_cache(maxsize=64)
def slurm_command(name: str, folder: str = "") -> str:
    """The path of SLURM's command ``name``: in ``folder`` (the site's ``slurm.bin_dir``) or the
    first folder of :data:`SECURE_PATH` that has it; the bare name when none has it (whoever runs
    it then looks on its own PATH: a job's side, where no sudo rule is involved). Looked up once
    per process (every SLURM command the hub runs asks): SLURM moved means a restart, as it means
    installing the sudo rules again."""
    if folder:
        return str(Path(folder) / name)
    return shutil.which(name, path=SECURE_PATH) or name


def cancel_arguments_ok(args: Sequence[str]) -> bool:
    """What the hub cancels as a user: one job by its id, or a server's Dask workers by their
    job name (``--name aifw-dask-JOBID``). The cancel helper refuses anything else."""
    if len(args) == 1:
        return args[0].isascii() and args[0].isdigit() and len(args[0]) <= 12
    return len(args) == 2 and args[0] == "--name" and _WORKER_JOB_NAME.fullmatch(args[1]) is not None


#: What the listing may take and print: a user can only lie about their own environments, but
#: cannot hold the hub or fill its memory.
ENV_LIST_TIMEOUT = 5.0
ENV_LIST_MAX_BYTES = 256 * 1024


#: How long a command stopped (past its timeout or its output cap) is waited for, unread.
STOP_WAIT = 1.0


class OutputTooLong(Exception):
    pass


async def read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    """All of ``stream``, or OutputTooLong as soon as it holds more than ``limit`` bytes."""
    data = bytearray()
    while chunk := await stream.read(65536):
        data += chunk
        if len(data) > limit:
            raise OutputTooLong
    return bytes(data)


async def _spawn(
    full: Sequence[str], env: Mapping[str, str] | None
) -> tuple[asyncio.subprocess.Process, asyncio.SubprocessTransport]:
    """asyncio.create_subprocess_exec, with stdin, stdout and stderr piped, that also gives the
    process's transport: the one public way to close its pipes unread (:meth:`Slurm._stop`)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: asyncio.subprocess.SubprocessStreamProtocol(limit=2**16, loop=loop),
        *full,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    return asyncio.subprocess.Process(transport, protocol, loop), transport


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str = ""


def raise_for_failure(result: CommandResult) -> CommandResult:
    """Raise SlurmUnavailable (no answer) or SlurmError (a refusal) for a failed command."""
    if result.returncode != 0:
        message = clean_error(result.stderr or result.stdout) or f"{result.argv[0]} exited {result.returncode}"
        if _UNAVAILABLE.search(result.stderr):
            raise SlurmUnavailable(message)
        raise SlurmError(message)
    return result


def squeue_argv(*selectors: str, form: Format = SQUEUE_JOBS) -> list[str]:
    """squeue, without a header, for the jobs ``selectors`` pick (``-j``, ``-u``, ``--name``, ``-t``...),
    in ``form``: the only way the workbench asks squeue."""
    return ["squeue", "-h", *selectors, "-o", form.option]


def sacct_argv(*selectors: str, form: Format) -> list[str]:
    """sacct, parsable and without a header, for the jobs ``selectors`` pick (``-j``, ``-u``, ``-A``,
    ``-S``...), in ``form``: the only way the workbench asks sacct."""
    return ["sacct", *selectors, *form.sacct_options()]


def job_rows_argv(form: Format, user: str, since: str) -> list[str]:
    """sacct for one row per job in ``form`` (with the unit separator: job names and folders may hold "|")."""
    if user and not is_unix_user(user):
        raise SlurmError(f"not a valid Unix user name: {user!r}")
    who = ["-u", user, "-S", since] if user else ["-a", "-s", "PENDING,RUNNING"]
    return sacct_argv("-X", *who, form=form)


def outcome_argv(job_id: str) -> list[str]:
    """sacct for how one job ended and where it ran (:data:`~aifactory_workbench.slurm.formats.SACCT_OUTCOME`)."""
    return sacct_argv("-X", "-j", job_id, form=SACCT_OUTCOME)


def job_rows_format(fields: Sequence[str]) -> Format:
    """The sacct format of :meth:`Slurm.job_rows`: these fields (sacct's names), with the unit separator."""
    return sacct(*fields, sep=UNIT_SEPARATOR)


@dataclass
class Slurm:
    """Runs SLURM's client commands; ``sudo`` is how it reaches SLURM as another user."""

    sudo: Sequence[str] = ("sudo", "-n", "-u")  # no -E: sudo keeps only the job's variables
    root_sudo: Sequence[str] = ("sudo", "-n")  # root's helpers, each through its own rule
    timeout: float = 30.0
    #: The folder of SLURM's commands (the site's ``slurm.bin_dir``; "": :func:`slurm_command`).
    bin_dir: str = ""
    _node_addresses: dict[str, str] = field(default_factory=dict)

    def resolved(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with a SLURM command's name made its path: what sudo's rules name."""
        if argv and argv[0] in SLURM_COMMANDS:
            return [slurm_command(argv[0], self.bin_dir), *argv[1:]]
        return list(argv)

    def as_user(self, user: str | None, argv: Sequence[str]) -> list[str]:
        if not user:
            return self.resolved(argv)
        if not is_unix_user(user):
            raise SlurmError(f"refusing to run a command as {user!r}: not a valid Unix user name")
        return [*self.sudo, user, "--", *self.resolved(argv)]

    def sudo_rules_allow(self) -> list[tuple[str, list[str]]]:
        """What the hub runs through sudo, each as (whom as: "user" or "root", the command line
        that a rule must allow); ``aifactory-site doctor`` asks sudo about each."""
        as_user = [
            self.resolved(["sbatch", "--parsable"]),
            self.resolved(["sbatch", "--test-only"]),
            [str(CANCEL_HELPER), "1"],
            [str(CANCEL_HELPER), "--name", f"{WORKER_JOB_PREFIX}1"],
            [str(ENV_LIST), "--json"],
        ]
        as_root = [[str(PASSWORD_HELPER), "user"], [str(LIBEXEC / EXTEND_HELPER), "user", "1", "1"]]
        return [("user", argv) for argv in as_user] + [("root", argv) for argv in as_root]

    async def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
    ) -> CommandResult:
        """Run one command; raise SlurmUnavailable or SlurmError when it fails (SlurmError too
        when it prints more than ``max_output`` bytes: it is stopped there). ``timeout``: this
        command's, instead of the client's."""
        full = self.as_user(user, argv)
        return raise_for_failure(
            await self.execute(full, Path(argv[0]).name, stdin=stdin, env=env, timeout=timeout, max_output=max_output)
        )

    async def execute(
        self,
        full: Sequence[str],
        name: str,
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
    ) -> CommandResult:
        """Run one command line as it is (``name``: the command, for the metrics), whatever its
        exit status; SlurmUnavailable when it cannot be run or does not answer."""
        timeout = timeout or self.timeout
        log.debug("slurm: %s", " ".join(full))
        COMMANDS.labels(command=name).inc()
        try:
            proc, transport = await _spawn(full, env)
        except FileNotFoundError as e:
            raise SlurmUnavailable(f"{full[0]} is not installed on this host") from e
        try:
            out, err = await asyncio.wait_for(self._communicate(proc, stdin, max_output), timeout)
        except TimeoutError as e:
            await self._stop(proc, transport)
            raise SlurmUnavailable(f"{name} did not answer within {timeout:.0f}s") from e
        except OutputTooLong as e:
            await self._stop(proc, transport)
            raise SlurmError(f"{name} printed more than {max_output} bytes") from e
        return CommandResult(
            list(full), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )

    @staticmethod
    async def _communicate(
        proc: asyncio.subprocess.Process, stdin: str | None, max_output: int | None
    ) -> tuple[bytes, bytes]:
        if max_output is None:
            return await proc.communicate(stdin.encode() if stdin is not None else None)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        if stdin is not None:
            proc.stdin.write(stdin.encode())
        proc.stdin.close()
        reads = [asyncio.ensure_future(read_capped(stream, max_output)) for stream in (proc.stdout, proc.stderr)]
        try:
            out, err = await asyncio.gather(*reads)
        finally:
            for read in reads:
                read.cancel()
        await proc.wait()
        return out, err

    @staticmethod
    async def _stop(proc: asyncio.subprocess.Process, transport: asyncio.SubprocessTransport) -> None:
        """Kill it and close its pipes without reading another byte of them: a command sudo runs
        as another user may not be ours to kill and may keep writing (a closed pipe ends its
        writes; sudo's own command_timeout ends it). It is waited for at most :data:`STOP_WAIT`
        seconds; the event loop's child watcher reaps it whenever it ends."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                proc.kill()
        for fd in (0, 1, 2):
            pipe = transport.get_pipe_transport(fd)
            if pipe is not None:
                pipe.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_WAIT)
        except TimeoutError:
            log.warning("slurm: %s did not end when killed", proc.pid)

    def run_blocking(self, argv: Sequence[str], stdin: str | None = None, cwd: str | None = None) -> CommandResult:
        """The same, blocking: for notebooks, whose kernel already runs an event loop, and
        command-line tools (``cwd``: where the command runs, for a job's working folder)."""
        COMMANDS.labels(command=Path(argv[0]).name).inc()
        argv = self.resolved(argv)
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=self.timeout, cwd=cwd)
        except FileNotFoundError as e:
            raise SlurmUnavailable(f"{argv[0]} is not installed on this host") from e
        except subprocess.TimeoutExpired as e:
            raise SlurmUnavailable(f"{argv[0]} did not answer within {self.timeout:.0f}s") from e
        return raise_for_failure(CommandResult(list(argv), proc.returncode, proc.stdout, proc.stderr))

    def job_blocking(self, job_id: str) -> JobInfo | None:
        """The job as squeue shows it now, blocking (None: the controller no longer holds it)."""
        return parse_squeue(self.run_blocking(squeue_argv("-j", job_id)).stdout).get(job_id)

    def time_left(self, job_id: str) -> int | None:
        """Seconds until the job's walltime ends (None: no limit, not found or no answer)."""
        try:
            info = self.job_blocking(job_id)
        except SlurmError:
            return None
        return parse_duration(info.time_left) if info is not None else None

    async def extend_job(self, helper: str, user: str, job_id: str, minutes: int, *, timeout: float) -> CommandResult:
        """Ask the root-owned helper (root/extend_job.py, through the one sudo rule for it) to add
        ``minutes`` to ``user``'s job: its exit status and one line of JSON say what it did or
        why it refused, for the caller to read (no exception for a refusal). ``timeout``: longer
        than the helper can take, so that no answer is given up on while the helper goes on."""
        if not is_unix_user(user) or not job_id.isdigit():
            raise SlurmError(f"refusing to extend job {job_id!r} of {user!r}")
        argv = [*self.root_sudo, helper, user, job_id, str(int(minutes))]
        return await self.execute(argv, "extend", timeout=timeout)

    async def submit(self, script: str, *, user: str, env: Mapping[str, str]) -> str:
        """Submit a batch script on stdin as ``user``; return the job id."""
        result = await self.run(["sbatch", "--parsable"], user=user, stdin=script, env=env)
        return parse_sbatch_parsable(result.stdout)

    async def queue(self, job_name: str) -> dict[str, JobInfo]:
        """Every user's jobs of this name that the controller still holds: one call for all."""
        result = await self.run(squeue_argv("--name", job_name))
        return parse_squeue(result.stdout)

    async def running_jobs(self, job_name: str, *, user: str) -> dict[str, JobInfo]:
        """The user's running jobs of this name (a server's Dask workers)."""
        result = await self.run(squeue_argv("-u", user, "--name", job_name, "-t", "RUNNING"))
        return parse_squeue(result.stdout)

    async def jobs_by_id(self, job_ids: list[str]) -> dict[str, JobInfo]:
        """The jobs of these ids that the controller still holds, whatever their name now."""
        try:
            result = await self.run(squeue_argv("-j", ",".join(job_ids)))
        except SlurmError as e:
            if isinstance(e, SlurmUnavailable) or "Invalid job id" not in str(e):
                raise
            return {}  # squeue says so when it knows none of them
        return parse_squeue(result.stdout)

    async def job(self, job_id: str) -> JobInfo | None:
        """The job as squeue shows it now (None: the controller no longer holds it)."""
        return (await self.jobs_by_id([job_id])).get(job_id)

    async def accounting(self, job_id: str) -> JobRecord | None:
        """How accounting saw the job (state, exit code, reason, memory)."""
        result = await self.run(sacct_argv("-j", job_id, form=SACCT_RECORDS))
        return parse_sacct(result.stdout).get(job_id)

    async def cancel(self, job_id: str, *, user: str) -> None:
        """Cancel the job as its owner; cancelling a job that already ended is fine."""
        try:
            await self.run(self.cancel_argv(user, job_id), user=user)
        except SlurmError as e:
            if isinstance(e, SlurmUnavailable) or not ("Invalid job id" in str(e) or "already completing" in str(e)):
                raise

    async def cancel_named(self, name: str, *, user: str) -> None:
        """Cancel the user's jobs of this name (a server's Dask workers)."""
        await self.run(self.cancel_argv(user, "--name", name), user=user)

    @staticmethod
    def cancel_argv(user: str | None, *args: str) -> list[str]:
        """scancel's command line: as another user, through the cancel helper (sudo's rule)."""
        if user and not cancel_arguments_ok(args):
            raise SlurmError(f"refusing to cancel {' '.join(args)!r} as {user!r}")
        return [str(CANCEL_HELPER), *args] if user else ["scancel", *args]

    async def cluster_records(self, kind: str) -> list[dict[str, str]]:
        """Every partition, node or reservation the controller knows (``kind``: partition, node, res)."""
        return parse_scontrol_records((await self.run(["scontrol", "show", kind, "-o"])).stdout)

    async def associations(self, users: Sequence[str]) -> dict[str, tuple[str, list[dict[str, str]]]]:
        """Each user's default account and associations (Account, Partition, QOS, DefaultQOS),
        for all of ``users`` in one call to SLURM's database; ("", []) for a user it does not know
        and for a name that is not a Unix user's (never put on sacctmgr's command line)."""
        names = [user for user in dict.fromkeys(users) if is_unix_user(user)]
        argv = sacctmgr_argv(SACCTMGR_ASSOCIATIONS, "user", ",".join(names), "withassoc")
        found = parse_associations((await self.run(argv)).stdout) if names else {}
        return {user: found.get(user, ("", [])) for user in users}

    async def qos_limits(self) -> list[dict[str, str]]:
        """Every QoS with its walltime and TRES limits."""
        return parse_rows((await self.run(sacctmgr_argv(SACCTMGR_QOS_LIMITS, "qos"))).stdout, SACCTMGR_QOS_LIMITS)

    async def test_only(
        self, script: str, *, user: str, env: Mapping[str, str], options: Sequence[str] = ()
    ) -> tuple[str, str]:
        """When and where the job would start if submitted now (nothing is submitted). ``options``:
        sbatch's, beside the script's own ``#SBATCH`` lines (a notebook job's, in its JupyterLab
        job, where ``user`` is "": no sudo, whose rule allows none)."""
        TEST_ONLY.inc()
        result = await self.run(["sbatch", "--test-only", *options], user=user, stdin=script, env=env)
        return parse_test_only(result.stderr + result.stdout)

    async def account_usage(self, account: str, since: str) -> list[dict[str, str]]:
        """Every job of the account since ``since`` (YYYY-MM-DD): elapsed seconds and TRES."""
        argv = sacct_argv("-a", "-X", "-A", account, "-S", since, "-E", "now", form=SACCT_USAGE)
        return parse_rows((await self.run(argv)).stdout, SACCT_USAGE)

    async def job_rows(
        self, fields: Sequence[str], *, user: str = "", since: str = "now-7days"
    ) -> list[dict[str, Any]]:
        """One row per job (sacct -X): ``user``'s since ``since``; without a user, every user's
        jobs that are pending or running now."""
        form = job_rows_format(fields)
        return parse_rows((await self.run(job_rows_argv(form, user, since))).stdout, form)

    def job_rows_blocking(self, fields: Sequence[str], *, user: str, since: str = "now-7days") -> list[dict[str, Any]]:
        """The same, blocking (command-line tools)."""
        form = job_rows_format(fields)
        return parse_rows(self.run_blocking(job_rows_argv(form, user, since)).stdout, form)

    async def queue_positions(self) -> dict[str, str]:
        """Every pending job's place in its partition's queue: one call for all partitions."""
        out = (await self.run(squeue_argv("-t", "PENDING", "--sort=-p,i", form=SQUEUE_POSITIONS))).stdout
        return parse_positions(out)

    async def environments(self, user: str) -> str:
        """``aifactory-env list --json`` as ``user`` (their environments and their projects'),
        bounded in time and size; the caller parses it strictly (spawners/environments.py)."""
        argv = [str(ENV_LIST), "--json"]
        result = await self.run(argv, user=user, timeout=ENV_LIST_TIMEOUT, max_output=ENV_LIST_MAX_BYTES)
        return result.stdout

    async def node_address(self, node: str) -> str:
        """The address to reach a compute node at (NodeAddr), cached: it does not change."""
        if node not in self._node_addresses:
            result = await self.run(["scontrol", "show", "node", node, "-o"])
            fields = parse_scontrol_oneliner(result.stdout)
            self._node_addresses[node] = fields.get("NodeAddr") or node
        return self._node_addresses[node]
