"""The one place where the workbench runs SLURM commands and parses what they print.

Every command is an argument list (never a shell line), so no value can be read by a
shell; commands run on behalf of a user go through ``sudo -n -u USER``, which is how the
hub reaches SLURM as each user.  Parsers are pure functions so that recorded output can
be tested without a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from prometheus_client import Counter

log = logging.getLogger(__name__)

#: Every command run, by name: the hub's load on SLURM, at /hub/metrics.
COMMANDS = Counter("aifactory_slurm_commands", "SLURM commands run by the hub", ["command"])

#: squeue states in which a job still holds or waits for resources.
PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESV_DEL_HOLD", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"})

#: What slurm clients print when slurmctld cannot be reached (as opposed to a refusal).
_UNAVAILABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|slurm_load_jobs error: Unexpected message"
    r"|Unable to connect to database|slurmdbd: Connection refused",
    re.IGNORECASE,
)

# squeue fields, separated by a character no field may contain.
_SEP = "|"
_SQUEUE_FIELDS = ("%i", "%T", "%u", "%a", "%P", "%B", "%r", "%j", "%S")
_SACCT_FIELDS = "JobID,State,ExitCode,Reason,NodeList,Elapsed,Start,End,MaxRSS,ReqMem"


class SlurmError(RuntimeError):
    """SLURM answered and refused: the message is SLURM's own, fit to show a user."""


class SlurmUnavailable(SlurmError):
    """The controller (or accounting daemon) did not answer: retry later, change nothing."""


@dataclass(frozen=True)
class JobInfo:
    """One line of squeue: a job that the controller still knows."""

    job_id: str
    state: str
    user: str
    account: str
    partition: str
    node: str
    reason: str
    name: str
    start_time: str

    @property
    def is_pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class JobRecord:
    """A job as accounting remembers it, after (or while) it ran."""

    job_id: str
    state: str
    exit_code: str
    reason: str
    node: str
    elapsed: str
    max_rss_mb: int = 0  # the largest of its steps' peak memory
    req_mem_mb: int = 0  # the memory it asked for

    @property
    def out_of_memory(self) -> bool:
        """Killed for memory: SLURM says so, or (no cgroups) a step was killed at its limit."""
        if self.state == "OUT_OF_MEMORY":
            return True
        killed = self.state in ("FAILED", "CANCELLED") and self.exit_code.endswith(":9")
        return killed and 0 < self.req_mem_mb <= self.max_rss_mb

    @property
    def ended(self) -> bool:
        return self.state not in PENDING_STATES | RUNNING_STATES


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str = ""


def parse_sbatch_parsable(output: str) -> str:
    """``sbatch --parsable`` prints ``JOBID`` or ``JOBID;CLUSTER`` (maybe after warnings)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        raise SlurmError("sbatch printed no job id")
    job_id = lines[-1].split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {lines[-1]!r}")
    return job_id


def squeue_format() -> str:
    return _SEP.join(_SQUEUE_FIELDS)


def parse_squeue(output: str) -> dict[str, JobInfo]:
    """Parse ``squeue -h -o`` with :func:`squeue_format`; one entry per job id."""
    jobs: dict[str, JobInfo] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = line.split(_SEP)
        if len(parts) != len(_SQUEUE_FIELDS) or not parts[0].strip():
            raise SlurmError(f"unexpected squeue line: {line!r}")
        job_id, state, user, account, partition, node, reason, name, start = (p.strip() for p in parts)
        jobs[job_id] = JobInfo(job_id, state, user, account, partition, node, reason, name, start)
    return jobs


def parse_sacct(output: str) -> dict[str, JobRecord]:
    """Parse ``sacct -n -P -o`` with the fields in ``_SACCT_FIELDS``: one record per job, with
    the peak memory of its steps (``JOBID.batch`` & co) folded in."""
    records: dict[str, JobRecord] = {}
    peaks: dict[str, int] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 6:
            raise SlurmError(f"unexpected sacct line: {line!r}")
        job_id, state, exit_code, reason, node, elapsed = parts[:6]
        max_rss, req_mem = (parts + ["", "", "", ""])[8:10]  # absent from older recorded output
        if "." in job_id:
            job = job_id.split(".")[0]
            peaks[job] = max(peaks.get(job, 0), parse_memory_mb(max_rss) or 0)
            continue
        # sacct writes "CANCELLED by 1001": the state is the first word.
        requested = parse_memory_mb(req_mem.rstrip("nc")) or 0
        records[job_id] = JobRecord(
            job_id, state.split()[0] if state else "", exit_code, reason, node, elapsed, 0, requested
        )
    return {job_id: replace(r, max_rss_mb=peaks.get(job_id, 0)) for job_id, r in records.items()}


def parse_scontrol_oneliner(output: str) -> dict[str, str]:
    """``scontrol show ... -o`` prints ``Key=Value`` pairs on one line."""
    return dict(re.findall(r"(\w+)=(\S*)", output))


def parse_scontrol_records(output: str) -> list[dict[str, str]]:
    """``scontrol show partition|node|res -o``: one record per line ("No ..." means none)."""
    return [parse_scontrol_oneliner(line) for line in output.splitlines() if "=" in line]


def parse_pipe_table(output: str, names: Sequence[str]) -> list[dict[str, str]]:
    """``sacctmgr -n -P`` / ``sacct -n -P`` output for the fields ``names``, in that order."""
    rows = []
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < len(names):
            raise SlurmError(f"unexpected line for {','.join(names)}: {line!r}")
        rows.append(dict(zip(names, parts, strict=False)))
    return rows


def parse_tres(text: str) -> dict[str, str]:
    """``cpu=4,mem=2G,gres/gpu=1`` as a mapping (empty text: no TRES)."""
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def parse_memory_mb(text: str) -> int | None:
    """SLURM sizes (``16000``, ``16000M``, ``2G``, ``1T``) in MB; None for UNLIMITED."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip())
    if not m:
        return None
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return int(float(m.group(1)) * factor)


def parse_gres_count(gres: str, name: str = "gpu") -> int:
    """How many of ``name`` a ``Gres=`` value declares: ``gpu:2``, ``gpu:a100:4(S:0-1)``."""
    total = 0
    for item in gres.split(","):
        parts = re.sub(r"\(.*\)", "", item).split(":")
        if parts[0] == name and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_positions(output: str) -> dict[str, str]:
    """``squeue -t PENDING -o %i|%P`` in priority order: job id -> "k of n" in its partition."""
    by_partition: dict[str, list[str]] = {}
    for line in output.split():
        job_id, _, partition = line.partition("|")
        by_partition.setdefault(partition, []).append(job_id)
    return {j: f"{i + 1} of {len(jobs)}" for jobs in by_partition.values() for i, j in enumerate(jobs)}


def parse_test_only(stderr: str) -> tuple[str, str]:
    """``sbatch --test-only`` says "Job N to start at TIME using ... in partition P"."""
    m = re.search(r"to start at (\S+) using .* in partition (\S+)", stderr)
    if not m:
        raise SlurmError(f"sbatch --test-only gave no start time: {clean_error(stderr)!r}")
    return m.group(1), m.group(2)


_PENDING_WORDS = {
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
    "None": "about to start",
}


def explain_pending(reason: str) -> str:
    """SLURM's pending reason in words a user understands (SLURM's own word if unknown)."""
    return _PENDING_WORDS.get(reason, f"SLURM says: {reason}")


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


@dataclass
class Slurm:
    """Runs SLURM's client commands; ``sudo`` is how it reaches SLURM as another user."""

    sudo: Sequence[str] = ("sudo", "-n", "-E", "-u")
    timeout: float = 30.0
    _node_addresses: dict[str, str] = field(default_factory=dict)

    def as_user(self, user: str | None, argv: Sequence[str]) -> list[str]:
        if not user:
            return list(argv)
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]*", user):
            raise SlurmError(f"refusing to run a command as {user!r}: not a valid Unix user name")
        return [*self.sudo, user, "--", *argv]

    async def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run one command; raise SlurmUnavailable or SlurmError when it fails."""
        full = self.as_user(user, argv)
        log.debug("slurm: %s", " ".join(full))
        COMMANDS.labels(command=argv[0]).inc()
        try:
            proc = await asyncio.create_subprocess_exec(
                *full,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(env) if env is not None else None,
            )
        except FileNotFoundError as e:
            raise SlurmUnavailable(f"{full[0]} is not installed on this host") from e
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
            )
        except TimeoutError as e:
            proc.kill()
            await proc.wait()
            raise SlurmUnavailable(f"{argv[0]} did not answer within {self.timeout:.0f}s") from e
        return checked(
            CommandResult(full, proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
        )

    def run_sync(self, argv: Sequence[str]) -> CommandResult:
        """The same, blocking: for notebooks, whose kernel already runs an event loop."""
        COMMANDS.labels(command=argv[0]).inc()
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError as e:
            raise SlurmUnavailable(f"{argv[0]} is not installed on this host") from e
        except subprocess.TimeoutExpired as e:
            raise SlurmUnavailable(f"{argv[0]} did not answer within {self.timeout:.0f}s") from e
        return checked(CommandResult(list(argv), proc.returncode, proc.stdout, proc.stderr))

    def time_left(self, job_id: str) -> int | None:
        """Seconds until the job's walltime ends (None: no limit or not found)."""
        try:
            out = self.run_sync(["squeue", "-h", "-j", job_id, "-o", "%L"]).stdout.strip()
        except SlurmError:
            return None
        return parse_duration(out)

    async def submit(self, script: str, *, user: str, env: Mapping[str, str]) -> str:
        """Submit a batch script on stdin as ``user``; return the job id."""
        result = await self.run(["sbatch", "--parsable"], user=user, stdin=script, env=env)
        return parse_sbatch_parsable(result.stdout)

    async def queue(self, job_name: str) -> dict[str, JobInfo]:
        """Every user's jobs of this name that the controller still holds: one call for all."""
        result = await self.run(["squeue", "-h", "--name", job_name, "-o", squeue_format()])
        return parse_squeue(result.stdout)

    async def record(self, job_id: str) -> JobRecord | None:
        """How accounting saw the job (state, exit code, reason)."""
        result = await self.run(["sacct", "-n", "-P", "-j", job_id, "-o", _SACCT_FIELDS])
        return parse_sacct(result.stdout).get(job_id)

    async def cancel(self, job_id: str, *, user: str) -> None:
        """Cancel the job as its owner; cancelling a job that already ended is fine."""
        try:
            await self.run(["scancel", job_id], user=user)
        except SlurmError as e:
            if isinstance(e, SlurmUnavailable) or "Invalid job id" not in str(e):
                raise

    async def cancel_named(self, name: str, *, user: str) -> None:
        """Cancel the user's jobs of this name (a server's Dask workers)."""
        await self.run(["scancel", "--name", name], user=user)

    async def show(self, kind: str) -> list[dict[str, str]]:
        """Every partition, node or reservation the controller knows (``kind``: partition, node, res)."""
        return parse_scontrol_records((await self.run(["scontrol", "show", kind, "-o"])).stdout)

    async def associations(self, user: str) -> tuple[str, list[dict[str, str]]]:
        """The user's default account and associations (Account, Partition, QOS, DefaultQOS)."""
        names = ("Account", "Partition", "QOS", "DefaultQOS")
        where = [f"user={user}", "format=" + ",".join(names)]
        assoc = await self.run(["sacctmgr", "-n", "-P", "show", "assoc", "where", *where])
        rows = parse_pipe_table(assoc.stdout, names)
        users = await self.run(["sacctmgr", "-n", "-P", "show", "user", user, "format=DefaultAccount"])
        return users.stdout.strip(), rows

    async def qos_limits(self) -> list[dict[str, str]]:
        """Every QoS with its walltime and TRES limits."""
        names = ("Name", "MaxWall", "MaxTRES", "MaxTRESPerNode")
        out = (await self.run(["sacctmgr", "-n", "-P", "show", "qos", "format=" + ",".join(names)])).stdout
        return parse_pipe_table(out, names)

    async def test_only(self, script: str, *, user: str, env: Mapping[str, str]) -> tuple[str, str]:
        """When and where the job would start if submitted now (nothing is submitted)."""
        result = await self.run(["sbatch", "--test-only"], user=user, stdin=script, env=env)
        return parse_test_only(result.stderr + result.stdout)

    async def account_usage(self, account: str, since: str) -> list[dict[str, str]]:
        """Every job of the account since ``since`` (YYYY-MM-DD): elapsed seconds and TRES."""
        names = ("JobID", "ElapsedRaw", "AllocTRES")
        argv = ["sacct", "-a", "-X", "-n", "-P", "-A", account, "-S", since, "-E", "now", "-o", ",".join(names)]
        return parse_pipe_table((await self.run(argv)).stdout, names)

    async def queue_positions(self) -> dict[str, str]:
        """Every pending job's place in its partition's queue: one call for all partitions."""
        out = (await self.run(["squeue", "-h", "-t", "PENDING", "-o", "%i|%P", "--sort=-p,i"])).stdout
        return parse_positions(out)

    async def node_address(self, node: str) -> str:
        """The address to reach a compute node at (NodeAddr), cached: it does not change."""
        if node not in self._node_addresses:
            result = await self.run(["scontrol", "show", "node", node, "-o"])
            fields = parse_scontrol_oneliner(result.stdout)
            self._node_addresses[node] = fields.get("NodeAddr") or node
        return self._node_addresses[node]


def checked(result: CommandResult) -> CommandResult:
    """Raise SlurmUnavailable (no answer) or SlurmError (a refusal) for a failed command."""
    if result.returncode != 0:
        message = clean_error(result.stderr or result.stdout) or f"{result.argv[0]} exited {result.returncode}"
        if _UNAVAILABLE.search(result.stderr):
            raise SlurmUnavailable(message)
        raise SlurmError(message)
    return result


def parse_duration(text: str) -> int | None:
    """SLURM's [D-]HH:MM:SS, MM:SS or MM as seconds; None for UNLIMITED or nonsense."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+)(?::(\d+))?", text.strip())
    if not m:
        return None
    days, first, second, third = (int(g) if g else 0 for g in m.groups())
    if m.group(4) is not None:  # three fields: H:M:S (with or without days)
        hours, minutes, seconds = first, second, third
    elif m.group(2) is not None:  # two fields: with days D-H:M, else M:S
        hours, minutes, seconds = (first, second, 0) if m.group(1) else (0, first, second)
    else:  # one field: D-H or M
        hours, minutes, seconds = (second, 0, 0) if m.group(1) else (0, second, 0)
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def clean_error(text: str) -> str:
    """SLURM's message without the ``sbatch: error:`` prefixes and blank lines."""
    lines = [re.sub(r"^\w+: error: ", "", line).strip() for line in text.strip().splitlines()]
    return "; ".join(line for line in lines if line)
