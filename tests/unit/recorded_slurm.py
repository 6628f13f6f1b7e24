"""The unit tests' one SLURM: an in-memory cluster (:class:`FakeSlurm`) that prints what the mini
cluster printed.  What it is asked is the real client's (its arguments, its formats); only the
subprocess is left out.  It refuses an squeue, sacct or sinfo whose ``-o``, or a ``sacctmgr show``
whose ``format=``, is not one of :mod:`aifactory_workbench.slurm.formats`'s, so a caller that writes
its own field list fails its tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aifactory_workbench.slurm import formats
from aifactory_workbench.slurm.client import CANCEL_HELPER, CommandResult, Slurm, raise_for_failure
from aifactory_workbench.slurm.parsers import JobInfo, parse_sacct, parse_squeue

#: Every (command, -o or format= value) the workbench's formats make.
KNOWN_FORMATS = {(f.command, f.option) for f in vars(formats).values() if isinstance(f, formats.Format)}


def squeue_line(info: JobInfo) -> str:
    """``info`` as squeue prints it in the jobs format."""
    return formats.SQUEUE_JOBS.sep.join(getattr(info, name) for name in formats.SQUEUE_JOBS.names)


def check_format(argv: Sequence[str]) -> None:
    """Fail unless an squeue, sacct or sinfo command's -o, or a sacctmgr show's format=, comes
    from slurm.formats (sacctmgr's other verbs print no table)."""
    command = Path(argv[0]).name if argv else ""
    if command == "sacctmgr" and "show" in argv:
        given = [a.split("=", 1)[1] for a in argv if a.startswith("format=")]
        assert given, f"{shlex.join(argv)}: no format=, sacctmgr's own columns"
        option = given[-1]
    elif command in ("squeue", "sacct", "sinfo"):
        assert "-o" in argv, f"{shlex.join(argv)}: no -o, {command}'s own columns"
        option = argv[list(argv).index("-o") + 1]
    else:
        return
    assert (command, option) in KNOWN_FORMATS, f"{command} {option!r}: a format of its own, not one of slurm.formats'"


# -- one in-memory cluster ----------------------------------------------------------------
DATA = Path(__file__).resolve().parent.parent / "data"

#: Lines of the mini cluster's squeue, one per state it recorded (tests/data/record.sh).
RECORDED_QUEUE = {info.state: info for info in parse_squeue((DATA / "squeue.txt").read_text()).values()}


def recorded_ends() -> dict[str, list[str]]:
    """Accounting's lines for each way a job ended on the mini cluster (tests/data/sacct*.txt):
    the job's line and its steps', by its state (OUT_OF_MEMORY: a job that the kernel's
    OOM killer ended, which SLURM records as FAILED with the step's peak memory)."""
    ends: dict[str, list[str]] = {}
    for name in ("sacct.txt", "sacct_ends.txt"):
        jobs: dict[str, list[str]] = {}
        for line in (DATA / name).read_text().splitlines():
            jobs.setdefault(line.split("|")[0].split(".")[0], []).append(line)
        for job_id, record in parse_sacct((DATA / name).read_text()).items():
            ends.setdefault("OUT_OF_MEMORY" if record.out_of_memory else record.state, jobs[job_id])
    return ends


RECORDED_ENDS = recorded_ends()

#: The mini cluster's partition gpp as ``scontrol show partition gpp -o`` printed it (SLURM 22.05);
#: acc differs in its name, nodes and MaxTime (1-00:00:00).
PARTITION_LINE = (
    "PartitionName={name} AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=part_{name} "
    "DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED "
    "MaxTime={max_time} MinNodes=0 LLN=YES MaxCPUsPerNode=UNLIMITED Nodes=mn5-g[01-02] PriorityJobFactor=1 "
    "PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=CANCEL State=UP "
    "TotalCPUs=224 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED "
    "MaxMemPerNode=UNLIMITED TRES=cpu=224,mem=32000M,node=2,billing=224"
)
#: The mini cluster's limits (cluster/minicluster.sh, cluster/templates/slurm.conf.in).
QOS_MAX_WALL = {"interactive": "12:00:00", "normal": "2-00:00:00", "urgent": "", "part_gpp": "", "part_acc": ""}
PARTITION_MAX_TIME = {"gpp": "2-00:00:00", "acc": "1-00:00:00"}

#: A job as ``scontrol show job N -o`` prints it (SLURM 22.05's order of fields, shortened after
#: WorkDir; written from that layout, not recorded from the mini cluster).
JOB_LINE = (
    "JobId={job_id} JobName={name} UserId={user}(1001) GroupId={user}(1001) MCS_label=N/A Priority=1 Nice=0 "
    "Account={account} QOS={qos} JobState=RUNNING Reason=None Dependency=(null) TimeLimit={time_limit} "
    "Partition={partition} WorkDir=/home/{user}"
)

#: ``scontrol show KIND -o`` as the mini cluster printed it (no reservation was open).
CLUSTER_RECORDS = {"partition": "scontrol_partitions.txt", "node": "scontrol_node.txt"}

#: The mini cluster's node as scontrol shows it (one line: NodeAddr is what the hub connects to).
NODE_LINE = "NodeName={node} Arch=x86_64 CPUTot=112 NodeAddr={address} RealMemory=16000 State=MIXED Partitions=gpp,acc"


class FakeSlurm(Slurm):
    """An in-memory SLURM: the real client asks it (its arguments, its formats), and it answers
    with lines as the mini cluster printed them: queue rows from ``tests/data/squeue.txt``,
    accounting from ``tests/data/sacct*.txt`` (each recorded end, for this job's id).

    A test plays the scheduler: :meth:`run_job`, :meth:`end_job` (TIMEOUT, PREEMPTED,
    NODE_FAIL, FAILED...), :meth:`rename`, ``down`` (the controller does not answer) and
    ``refusal`` (sbatch refuses).  ``asked`` keeps every command as (user, argv)."""

    def __init__(self, addresses: dict[str, str] | None = None, *, down: bool = False) -> None:
        super().__init__()
        self.addresses = addresses or {"mn5-n01": "127.0.0.1"}
        self.queue_now: dict[str, JobInfo] = {}  # what the controller holds
        self.names: dict[str, str] = {}  # job id -> job name
        self.scripts: dict[str, str] = {}
        self.accounting_lines: dict[str, list[str]] = {}
        self.asked: list[tuple[str, list[str]]] = []
        self.down = down
        self.refusal = ""
        self._next_id = 4700
        self.time_limits: dict[str, str] = {}  # job id -> squeue's %l (default 2:00:00)
        self.qos_of: dict[str, str] = {}  # job id -> QoS (default interactive)
        self.qos_max_wall = dict(QOS_MAX_WALL)  # QoS -> MaxWall ("": none)
        #: (user, account, partition or "") -> the association's MaxWall; none: no row
        self.assoc_max_wall: dict[tuple[str, str, str], str] = {}
        #: When ``sbatch --test-only`` says a script would start (a local ISO time): now, unless a test says.
        self.test_start: Callable[[str], str] = lambda script: dt.datetime.now().isoformat(timespec="seconds")
        #: ``sacctmgr show user ... withassoc`` rows (tests/data/sacctmgr_associations.txt: alice, instructor).
        self.association_rows = (DATA / "sacctmgr_associations.txt").read_text().splitlines()
        #: Seconds each command takes (a busy controller), 0: none.
        self.delay = 0.0

    # -- the scheduler's moves, played by a test --------------------------------------
    def run_job(self, job_id: str, node: str = "mn5-n01") -> None:
        self.queue_now[job_id] = replace(
            RECORDED_QUEUE["RUNNING"], **self._own(job_id), node=node, state="RUNNING", reason="None"
        )

    def end_job(self, job_id: str, how: str) -> None:
        """The job leaves the queue as a recorded job ended ``how`` (a state's first word)."""
        del self.queue_now[job_id]
        recorded = RECORDED_ENDS[how]
        old = recorded[0].split("|")[0]
        self.accounting_lines[job_id] = [line.replace(old, job_id, 1) for line in recorded]

    def hold(self, info: JobInfo, name: str = "aifw-jupyterlab") -> FakeSlurm:
        """The controller holds this job (as squeue lists it), named ``name``."""
        self.queue_now[info.job_id], self.names[info.job_id] = info, name
        return self

    def commands(self) -> list[list[str]]:
        """What was asked, without who asked it."""
        return [argv for _, argv in self.asked]

    def rename(self, job_id: str, name: str) -> None:
        self.names[job_id] = name

    def jobs_of(self, user: str) -> list[str]:
        return [j for j, info in self.queue_now.items() if info.user == user]

    def _own(self, job_id: str) -> dict[str, str]:
        info = self.queue_now[job_id]
        return {"job_id": job_id, "user": info.user, "partition": info.partition, "account": info.account}

    # -- the commands -----------------------------------------------------------------
    async def run(self, argv: Sequence[str], *, user: str | None = None, stdin: str | None = None, **_: Any):
        if argv and argv[0] == str(CANCEL_HELPER):  # root's wrapper: it runs scancel with the same arguments
            argv = ["scancel", *argv[1:]]
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer(list(argv), user or "", stdin)

    def run_blocking(self, argv: Sequence[str], stdin: str | None = None, cwd: str | None = None) -> CommandResult:
        return self.answer(list(argv), "", stdin)

    def answer(self, argv: list[str], user: str, stdin: str | None) -> CommandResult:
        check_format(argv)
        self.asked.append((user, argv))
        if self.down:
            error = f"{argv[0]}: error: Unable to contact slurm controller (connect failure)"
            return raise_for_failure(CommandResult(argv, 1, "", error))
        command = {"sbatch": self._sbatch, "squeue": self._squeue, "sacct": self._sacct, "scancel": self._scancel}
        if argv[0] in command:
            return command[argv[0]](argv, user, stdin or "")
        if argv[:2] == ["scontrol", "show"] and argv[3:] == ["-o"]:
            return CommandResult(
                argv, 0, (DATA / CLUSTER_RECORDS[argv[2]]).read_text() if argv[2] in CLUSTER_RECORDS else ""
            )
        if argv[:3] == ["scontrol", "show", "partition"]:
            return CommandResult(argv, 0, PARTITION_LINE.format(name=argv[3], max_time=PARTITION_MAX_TIME[argv[3]]))
        if argv[:2] == ["scontrol", "update"]:
            fields = dict(a.split("=", 1) for a in argv[2:])
            self.time_limits[fields["JobId"]] = fields["TimeLimit"]
            return CommandResult(argv, 0, "")
        if argv[:5] == ["sacctmgr", "-n", "-P", "show", "qos"] and argv[5].startswith("format="):
            return CommandResult(argv, 0, (DATA / "sacctmgr_qos_limits.txt").read_text())
        if argv[:5] == ["sacctmgr", "-n", "-P", "show", "user"] and argv[6] == "withassoc":
            asked = set(argv[5].split(","))
            return CommandResult(argv, 0, "".join(f"{r}\n" for r in self.association_rows if r.split("|")[0] in asked))
        if argv[:4] == ["sacctmgr", "-n", "-P", "show"] and argv[4] == "qos":
            name = argv[5]
            return CommandResult(argv, 0, f"{name}|{self.qos_max_wall[name]}\n" if name in self.qos_max_wall else "")
        if argv[:4] == ["sacctmgr", "-n", "-P", "show"] and argv[4:6] == ["assoc", "where"]:
            return self._assoc(argv)
        if argv[:3] == ["scontrol", "show", "job"]:
            if argv[3] not in self.queue_now:
                return raise_for_failure(CommandResult(argv, 1, "", "slurm_load_jobs error: Invalid job id specified"))
            return CommandResult(argv, 0, self._job_line(argv[3]) + "\n")
        if argv[:3] == ["scontrol", "show", "node"]:
            return CommandResult(argv, 0, NODE_LINE.format(node=argv[3], address=self.addresses[argv[3]]))
        raise AssertionError(f"the fake SLURM does not know {argv}")

    def _assoc(self, argv: list[str]) -> CommandResult:
        """``sacctmgr -n -P show assoc where user=U account=A [partition=P] format=...``: a row per
        matching association (``|`` between the asked fields, empty where unset)."""
        where = dict(a.split("=", 1) for a in argv[6:] if "=" in a)
        names = where.pop("format").split(",")
        rows = []
        for (user, account, partition), wall in self.assoc_max_wall.items():
            if user == where["user"] and account == where["account"] and where.get("partition", partition) == partition:
                rows.append("|".join({"Partition": partition, "MaxWall": wall}[n] for n in names))
        return CommandResult(argv, 0, "".join(row + "\n" for row in rows))

    def _job_line(self, job_id: str) -> str:
        info = self.queue_now[job_id]
        return JOB_LINE.format(
            job_id=job_id,
            name=self.names.get(job_id, "sbatch"),
            user=info.user,
            account=info.account,
            qos=self.qos_of.get(job_id, "interactive"),
            time_limit=self.time_limits.get(job_id, "2:00:00"),
            partition=info.partition,
        )

    def _sbatch(self, argv: list[str], user: str, script: str) -> CommandResult:
        if self.refusal:
            return raise_for_failure(CommandResult(argv, 1, "", f"sbatch: error: {self.refusal}"))
        # The script's #SBATCH line, or the option on the command line (a notebook job's).
        partition = re.search(r"^#SBATCH --partition=(\S+)", script, re.M) or re.search(
            r"^--partition=(\S+)$", "\n".join(argv), re.M
        )
        if "--test-only" in argv:  # as the mini cluster's sbatch says it (tests/unit/test_form.py)
            where = f"using 1 processors on nodes mn5-n01 in partition {partition.group(1) if partition else 'gpp'}"
            return CommandResult(argv, 0, "", f"sbatch: Job 4999 to start at {self.test_start(script)} {where}\n")
        self._next_id += 1
        job_id = str(self._next_id)
        name = re.search(r"^#SBATCH --job-name=(\S+)", script, re.M)
        self.names[job_id], self.scripts[job_id] = (name.group(1) if name else "sbatch"), script
        self.queue_now[job_id] = replace(
            RECORDED_QUEUE["PENDING"], job_id=job_id, user=user, partition=partition.group(1) if partition else "gpp"
        )
        return CommandResult(argv, 0, f"{job_id}\n")

    def _squeue(self, argv: list[str], user: str, _stdin: str) -> CommandResult:
        option = dict(zip(argv, argv[1:], strict=False))
        jobs = dict(self.queue_now)
        if "--name" in option:
            jobs = {j: i for j, i in jobs.items() if self.names.get(j) == option["--name"]}
        if "-u" in option:
            jobs = {j: i for j, i in jobs.items() if i.user == option["-u"]}
        if "-t" in option:
            jobs = {j: i for j, i in jobs.items() if i.state == option["-t"]}
        if "-j" in option:
            wanted = option["-j"].split(",")
            if not any(j in self.queue_now for j in wanted):
                return raise_for_failure(CommandResult(argv, 1, "", "slurm_load_jobs error: Invalid job id specified"))
            jobs = {j: i for j, i in jobs.items() if j in wanted}
        if option["-o"] == formats.SQUEUE_EXTEND.option:
            return CommandResult(argv, 0, "".join(self._extend_line(j, i) + "\n" for j, i in jobs.items()))
        if option["-o"] == formats.SQUEUE_POSITIONS.option:
            return CommandResult(argv, 0, "".join(f"{j}|{i.partition}\n" for j, i in sorted(jobs.items())))
        return CommandResult(argv, 0, "".join(squeue_line(i) + "\n" for i in jobs.values()))

    def _sacct(self, argv: list[str], user: str, _stdin: str) -> CommandResult:
        job_id = argv[argv.index("-j") + 1]
        if job_id in self.queue_now:  # accounting of a job in the queue: not ended
            info = self.queue_now[job_id]
            return CommandResult(argv, 0, f"{job_id}|{info.state}|0:0|None||1G|0|cpu=1,mem=1G,node=1\n")
        return CommandResult(argv, 0, "".join(line + "\n" for line in self.accounting_lines.get(job_id, [])))

    def _scancel(self, argv: list[str], user: str, _stdin: str) -> CommandResult:
        if argv[1] == "--name":
            for job_id in [j for j in self.jobs_of(user) if self.names.get(j) == argv[2]]:
                self.end_job(job_id, "CANCELLED")
            return CommandResult(argv, 0, "")
        job_id = argv[1]
        if job_id not in self.queue_now:
            return raise_for_failure(
                CommandResult(
                    argv, 1, "", f"scancel: error: Kill job error on job id {job_id}: Invalid job id specified"
                )
            )
        if self.queue_now[job_id].user != user:
            return raise_for_failure(
                CommandResult(
                    argv, 1, "", f"scancel: error: Kill job error on job id {job_id}: Access/permission denied"
                )
            )
        self.end_job(job_id, "CANCELLED")
        return CommandResult(argv, 0, "")

    def _extend_line(self, job_id: str, info: JobInfo) -> str:
        """The job in squeue's SQUEUE_EXTEND format (its used time: 5:12)."""
        values = {
            "job_id": job_id,
            "user": info.user,
            "state": info.state,
            "partition": info.partition,
            "qos": self.qos_of.get(job_id, "interactive"),
            "time_limit": self.time_limits.get(job_id, "2:00:00"),
            "time_used": "5:12",
            "name": self.names.get(job_id, "sbatch"),
        }
        return formats.SQUEUE_EXTEND.sep.join(values[name] for name in formats.SQUEUE_EXTEND.names)
