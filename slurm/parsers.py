"""Pure parsers of what SLURM's commands print: recorded output tests them without a cluster
(``tests/data``, recorded from the mini cluster by ``tests/data/record.sh``).  squeue, sacct,
sacctmgr and sinfo rows are read by the field names of :mod:`aifactory_workbench.slurm.formats`,
never by position; ``scontrol show`` prints ``Key=Value`` records, read here by key."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from aifactory_workbench.slurm.formats import (
    SACCT_OUTCOME,
    SACCT_RECORDS,
    SACCTMGR_ASSOC_WALLS,
    SACCTMGR_ASSOCIATIONS,
    SACCTMGR_DEFAULT_ACCOUNT,
    SACCTMGR_QOS_WALL,
    SQUEUE_JOBS,
    SQUEUE_POSITIONS,
    Format,
)
from aifactory_workbench.slurm.values import parse_duration, parse_memory_mb

#: squeue states in which a job still holds or waits for resources.
PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "RESV_DEL_HOLD", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"})


class SlurmError(RuntimeError):
    """SLURM answered and refused: the message is SLURM's own, fit to show a user."""


class SlurmUnavailable(SlurmError):
    """The controller (or accounting daemon) did not answer: retry later, change nothing."""


def core_hours(count: int, seconds: int) -> float:
    """Core-hours of ``count`` cores held for ``seconds`` (GPU-hours likewise, with GPUs): the
    workbench's one rule for what a job used."""
    return count * seconds / 3600


@dataclass(frozen=True)
class JobInfo:
    """One line of squeue: a job that the controller still knows."""

    job_id: str
    state: str
    user: str
    partition: str
    node: str
    reason: str
    start_time: str
    account: str = ""
    cpus: str = ""
    memory: str = ""  # as squeue prints it: 2G, 500M
    tres_per_node: str = ""  # gres:gpu:1, or N/A
    time_left: str = ""  # [D-]H:MM:SS, or INVALID/UNLIMITED/NOT_SET

    @property
    def gpus(self) -> int:
        return parse_gres_count(self.tres_per_node.replace("gres:", ""))

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
    max_rss_mb: int = 0  # the largest of its steps' peak memory
    req_mem_mb: int = 0  # the memory it asked for
    elapsed_s: int = 0
    alloc_cpus: int = 0
    alloc_gpus: int = 0

    @property
    def core_hours(self) -> float:
        return core_hours(self.alloc_cpus, self.elapsed_s)

    @property
    def gpu_hours(self) -> float:
        return core_hours(self.alloc_gpus, self.elapsed_s)

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


def parse_sbatch_parsable(output: str) -> str:
    """``sbatch --parsable`` prints ``JOBID`` or ``JOBID;CLUSTER`` (maybe after warnings)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        raise SlurmError("sbatch printed no job id")
    job_id = lines[-1].split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {lines[-1]!r}")
    return job_id


def parse_rows(output: str, form: Format) -> list[dict[str, str]]:
    """squeue or sacct output in the format ``form``: one row per line, by field name."""
    return parse_pipe_table(output, form.names, form.sep)


def parse_squeue(output: str) -> dict[str, JobInfo]:
    """Parse ``squeue -h -o`` with :data:`~aifactory_workbench.slurm.formats.SQUEUE_JOBS`;
    one entry per job id."""
    jobs: dict[str, JobInfo] = {}
    try:
        rows = parse_rows(output, SQUEUE_JOBS)
    except SlurmError as e:
        raise SlurmError(f"unexpected squeue line: {e}") from e
    for row in rows:
        info = JobInfo(**{name: value.strip() for name, value in row.items()})
        if not info.job_id:
            raise SlurmError(f"unexpected squeue line without a job id: {row!r}")
        jobs[info.job_id] = info
    return jobs


def parse_one_job(output: str, job_id: str, form: Format) -> dict[str, str] | None:
    """``squeue -h -j JOB`` in ``form``, whose last field (the job's name) is read whole: the
    job's row, or None unless the output is exactly one line of that job (a name with a line
    break, or any other line, is not guessed at)."""
    lines = output.strip("\n").split("\n")
    if len(lines) != 1 or not lines[0]:
        return None
    parts = lines[0].split(form.sep, len(form.names) - 1)
    if len(parts) != len(form.names):
        return None
    row = dict(zip(form.names, parts, strict=True))
    return row if row["job_id"] == job_id else None


def allocation(row: Mapping[str, str]) -> tuple[int, int, int]:
    """Seconds, cores and GPUs of an sacct row with ``ElapsedRaw`` and ``AllocTRES`` (0 for what it lacks)."""
    tres = parse_tres(row["AllocTRES"])
    return _count(row["ElapsedRaw"]), _count(tres.get("cpu", "")), _count(tres.get("gres/gpu", ""))


def _count(text: str) -> int:
    return int(text) if text.isdigit() else 0


def state_word(state: str) -> str:
    """sacct's state without its detail: "CANCELLED by 1001" is CANCELLED."""
    return state.split()[0] if state.strip() else ""


def parse_sacct(output: str) -> dict[str, JobRecord]:
    """Parse ``sacct -n -P -o`` with :data:`~aifactory_workbench.slurm.formats.SACCT_RECORDS`:
    one record per job, with the peak memory of its steps (``JOBID.batch`` & co) folded in."""
    records: dict[str, JobRecord] = {}
    peaks: dict[str, int] = {}
    for row in parse_rows(output, SACCT_RECORDS):
        job_id = row["JobID"]
        if "." in job_id:
            job = job_id.split(".")[0]
            peaks[job] = max(peaks.get(job, 0), parse_memory_mb(row["MaxRSS"]) or 0)
            continue
        state = state_word(row["State"])
        requested = parse_memory_mb(row["ReqMem"].rstrip("nc")) or 0
        seconds, cpus, gpus = allocation(row)
        records[job_id] = JobRecord(
            job_id,
            state,
            row["ExitCode"],
            row["Reason"],
            0,
            requested,
            elapsed_s=seconds,
            alloc_cpus=cpus,
            alloc_gpus=gpus,
        )
    return {job_id: replace(r, max_rss_mb=peaks.get(job_id, 0)) for job_id, r in records.items()}


def parse_outcome(output: str) -> tuple[str, str, str]:
    """State (its first word), node and exit code of one job from sacct with
    :data:`~aifactory_workbench.slurm.formats.SACCT_OUTCOME` ("" for what it does not say)."""
    try:
        row = next(iter(parse_rows(output, SACCT_OUTCOME)), {})
    except SlurmError:
        row = {}
    return state_word(row.get("State", "")), row.get("NodeList", ""), row.get("ExitCode", "")


def parse_scontrol_oneliner(output: str) -> dict[str, str]:
    """``scontrol show ... -o`` prints ``Key=Value`` pairs on one line."""
    return dict(re.findall(r"(\w+)=(\S*)", output))


def parse_scontrol_records(output: str) -> list[dict[str, str]]:
    """``scontrol show partition|node|res -o``: one record per line ("No ..." means none)."""
    return [parse_scontrol_oneliner(line) for line in output.splitlines() if "=" in line]


def parse_scontrol_config(output: str) -> dict[str, str]:
    """``scontrol show config``: its ``Key = Value`` lines (the key padded with spaces), from
    every section; lines without ``=`` (the header, section titles, the controllers' state) skipped."""
    config: dict[str, str] = {}
    for line in output.splitlines():
        key, equals, value = line.partition("=")
        if equals and key.strip():
            config.setdefault(key.strip(), value.strip())
    return config


def parse_node_address(output: str) -> str:
    """Where a node is reached (``NodeAddr``) from ``scontrol show node NODE -o``; "" unsaid."""
    return parse_scontrol_oneliner(output).get("NodeAddr", "")


def walltime_limit(value: str) -> int | None:
    """A ``MaxWall`` or ``MaxTime`` as seconds; None for no limit ("" unset, ``UNLIMITED``)."""
    return parse_duration(value) if value else None


def parse_partition_wall(output: str) -> tuple[int | None, str]:
    """``scontrol show partition P -o``: the partition's ``MaxTime`` (None: no limit) and the name
    of its own QoS ("" for none: scontrol says ``QoS=N/A``)."""
    record = parse_scontrol_oneliner(output)
    qos = record.get("QoS", "")
    return walltime_limit(record.get("MaxTime", "")), "" if qos in ("", "N/A") else qos


def parse_job_account(output: str, job_id: str, job_name: str) -> str:
    """The account of job ``job_id`` from ``scontrol show job JOB -o``. The job's name (the user's
    to change) comes before it on the line: unless it is ``job_name`` whole, a name holding
    ``Account=`` could stand in for the real field, so the account is read only after that name."""
    found = re.match(rf"JobId={re.escape(job_id)} JobName={re.escape(job_name)} UserId=.*? Account=(\S+) ", output)
    if found is None:
        raise SlurmError(f"the account of job {job_id} cannot be read")
    return found.group(1)


def parse_column(output: str, form: Format) -> list[str]:
    """The values of a one-field format (sacctmgr's names, sinfo's partitions), a line each."""
    (name,) = form.names
    return [row[name].strip() for row in parse_rows(output, form) if row[name].strip()]


def parse_default_account(output: str) -> str:
    """``sacctmgr show user U`` in :data:`~aifactory_workbench.slurm.formats.SACCTMGR_DEFAULT_ACCOUNT`:
    the user's default account ("": SLURM does not know the user)."""
    return next(iter(parse_column(output, SACCTMGR_DEFAULT_ACCOUNT)), "")


def parse_associations(output: str) -> dict[str, tuple[str, list[dict[str, str]]]]:
    """``sacctmgr show user U1,U2 withassoc`` in
    :data:`~aifactory_workbench.slurm.formats.SACCTMGR_ASSOCIATIONS`: each user's default account
    and associations (Account, Partition, QOS, DefaultQOS), by user; a user SLURM does not know
    is absent."""
    found: dict[str, tuple[str, list[dict[str, str]]]] = {}
    for row in parse_rows(output, SACCTMGR_ASSOCIATIONS):
        user, default = row.pop("User"), row.pop("DefaultAccount")
        found.setdefault(user, (default, []))[1].append(row)
    return found


def parse_qos_wall(output: str, qos: str) -> int | None:
    """``sacctmgr show qos NAME`` in :data:`~aifactory_workbench.slurm.formats.SACCTMGR_QOS_WALL`:
    that QoS's ``MaxWall`` (None: no limit, or no such QoS)."""
    rows = [row for row in parse_rows(output, SACCTMGR_QOS_WALL) if row["Name"] == qos]
    return walltime_limit(rows[0]["MaxWall"]) if rows else None


def parse_association_wall(output: str, partition: str) -> int | None:
    """``sacctmgr show assoc where user=U account=A`` in
    :data:`~aifactory_workbench.slurm.formats.SACCTMGR_ASSOC_WALLS`: the ``MaxWall`` of the
    association a job in ``partition`` runs under, the one of that partition if there is one, else
    the account's (without partition); the smallest one set where several rows match (None: none)."""
    rows = parse_rows(output, SACCTMGR_ASSOC_WALLS)
    own = [r for r in rows if r["Partition"] == partition] or [r for r in rows if not r["Partition"]]
    walls = [w for w in (walltime_limit(r["MaxWall"]) for r in own) if w is not None]
    return min(walls, default=None)


def parse_pipe_table(output: str, names: Sequence[str], sep: str = "|") -> list[dict[str, str]]:
    """``sacctmgr -n -P`` / ``sacct -n -P`` output for the fields ``names``, in that order
    (``sep``: what ``--delimiter`` was)."""
    rows = []
    for line in output.split("\n"):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != len(names):
            raise SlurmError(f"unexpected line for {','.join(names)}: {line!r}")
        rows.append(dict(zip(names, parts, strict=True)))
    return rows


def parse_tres(text: str) -> dict[str, str]:
    """``cpu=4,mem=2G,gres/gpu=1`` as a mapping (empty text: no TRES)."""
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def parse_gres_count(gres: str, name: str = "gpu") -> int:
    """How many of ``name`` a ``Gres=`` value declares: ``gpu:2``, ``gpu:a100:4(S:0-1)``."""
    total = 0
    for item in gres.split(","):
        parts = re.sub(r"\(.*\)", "", item).split(":")
        if parts[0] == name and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_positions(output: str) -> dict[str, str]:
    """``squeue -t PENDING`` with :data:`~aifactory_workbench.slurm.formats.SQUEUE_POSITIONS`, in
    priority order: job id -> "k of n" in its partition."""
    by_partition: dict[str, list[str]] = {}
    for row in parse_rows(output, SQUEUE_POSITIONS):
        by_partition.setdefault(row["partition"], []).append(row["job_id"])
    return {j: f"{i + 1} of {len(jobs)}" for jobs in by_partition.values() for i, j in enumerate(jobs)}


def parse_test_only(stderr: str) -> tuple[str, str]:
    """``sbatch --test-only`` says "Job N to start at TIME using ... in partition P"."""
    m = re.search(r"to start at (\S+) using .* in partition (\S+)", stderr)
    if not m:
        raise SlurmError(f"sbatch --test-only gave no start time: {clean_error(stderr)!r}")
    return m.group(1), m.group(2)


def clean_error(text: str) -> str:
    """SLURM's message without the ``sbatch: error:`` prefixes and blank lines."""
    lines = [re.sub(r"^\w+: error: ", "", line).strip() for line in text.strip().splitlines()]
    return "; ".join(line for line in lines if line)
