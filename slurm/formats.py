"""The fields the workbench asks ``squeue``, ``sacct``, ``sacctmgr`` and ``sinfo`` for: each field
list is written here once, and both the command's ``-o`` (sacctmgr's ``format=``) argument and the
names of the parsed row's fields come from it (:mod:`aifactory_workbench.slurm.parsers` reads rows
by these names, never by position). The unit tests' recorded SLURM refuses any other field list.

``tests/data/record.sh`` records its fixtures with the same lists: it runs this file
(``python3 slurm/formats.py squeue``), which therefore imports nothing but the standard library.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

#: sacct's field separator for output that holds users' own names (job names, folders), which may hold "|".
UNIT_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Format:
    """One command's field list: each field's name in a parsed row and its code for ``-o``.

    ``sep`` separates the fields of a line: squeue takes it inside the format (no field may
    hold it); sacct is given it as ``--delimiter`` (see :meth:`sacct_options`)."""

    command: str  # "squeue", "sacct", "sacctmgr" or "sinfo"
    fields: tuple[tuple[str, str], ...]  # (name, code)
    sep: str = "|"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def option(self) -> str:
        """The value of ``-o`` (sacctmgr: of ``format=``): squeue's and sinfo's codes joined by the
        separator, sacct's and sacctmgr's by commas."""
        codes = [code for _, code in self.fields]
        return (self.sep if self.command in ("squeue", "sinfo") else ",").join(codes)

    def sacct_options(self) -> list[str]:
        """``sacct`` arguments for parsable output in this format (no header, this separator)."""
        delimiter = [] if self.sep == "|" else [f"--delimiter={self.sep}"]
        return ["-n", "-P", *delimiter, "-o", self.option]


def sacctmgr_argv(form: Format, entity: str, *selectors: str) -> list[str]:
    """``sacctmgr show ENTITY [SELECTORS...]``, parsable and without a header, in ``form`` (a
    ``sacctmgr`` format): the only way the workbench reads SLURM's database of accounts and QoS."""
    if form.command != "sacctmgr":
        raise ValueError(f"not a sacctmgr format: {form.option}")
    return ["sacctmgr", "-n", "-P", "show", entity, *selectors, f"format={form.option}"]


def sinfo_argv(form: Format, *selectors: str) -> list[str]:
    """``sinfo`` without a header, for what ``selectors`` pick, in ``form`` (a ``sinfo`` format)."""
    if form.command != "sinfo":
        raise ValueError(f"not a sinfo format: {form.option}")
    return ["sinfo", "-h", *selectors, "-o", form.option]


def sacct(*names: str, sep: str = "|") -> Format:
    """An sacct format: its fields' names are sacct's own."""
    return Format("sacct", tuple((name, name) for name in names), sep)


def sacctmgr(*names: str) -> Format:
    """A sacctmgr format (``format=``, output with ``-P``: "|" between fields): sacctmgr's names."""
    return Format("sacctmgr", tuple((name, name) for name in names))


#: A job as squeue shows it: the fields of ``JobInfo``, in its order.
SQUEUE_JOBS = Format(
    "squeue",
    (
        ("job_id", "%i"),
        ("state", "%T"),
        ("user", "%u"),
        ("partition", "%P"),
        ("node", "%B"),
        ("reason", "%r"),
        ("start_time", "%S"),
        ("account", "%a"),
        ("cpus", "%C"),
        ("memory", "%m"),
        ("tres_per_node", "%b"),
        ("time_left", "%L"),
    ),
)

#: One job as the helper that extends a session reads it (root/extend_job.py): its owner, state,
#: limits and QoS, and its name last, read whole (a job's name may hold the separator).
SQUEUE_EXTEND = Format(
    "squeue",
    (
        ("job_id", "%i"),
        ("user", "%u"),
        ("state", "%T"),
        ("partition", "%P"),
        ("qos", "%q"),
        ("time_limit", "%l"),
        ("time_used", "%M"),
        ("name", "%j"),
    ),
)

#: Pending jobs in priority order (``--sort=-p,i``), for each one's place in its partition's queue.
SQUEUE_POSITIONS = Format("squeue", (("job_id", "%i"), ("partition", "%P")))

#: A job and its steps as accounting remembers them: the fields of ``JobRecord``.
SACCT_RECORDS = sacct("JobID", "State", "ExitCode", "Reason", "MaxRSS", "ReqMem", "ElapsedRaw", "AllocTRES")

#: How a job ended and where it ran (``sacct -X``): the doctor's probe job.
SACCT_OUTCOME = sacct("State", "NodeList", "ExitCode")

#: What an account's jobs used (``sacct -X``): core- and GPU-hours.
SACCT_USAGE = sacct("JobID", "ElapsedRaw", "AllocTRES")

#: The workbench's jobs (sessions, Dask workers, notebook jobs) for the home and operator pages.
SACCT_WORKBENCH_JOBS = sacct(
    "JobID",
    "JobName",
    "User",
    "Account",
    "Partition",
    "State",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "AllocTRES",
    "ReqCPUS",
    "NodeList",
    "WorkDir",
    sep=UNIT_SEPARATOR,
)

#: A user's notebook jobs (``aifactory-run-notebook status``): what became of each, and where it ran.
SACCT_NOTEBOOK_JOBS = sacct("JobID", "JobName", "State", "WorkDir", "Start", "End", sep=UNIT_SEPARATOR)

#: The partitions the controller has (``sinfo``): the doctor's first question as the hub's account.
SINFO_PARTITIONS = Format("sinfo", (("partition", "%R"),))

#: A QoS's walltime limit (``sacctmgr show qos NAME``): the extension helper's.
SACCTMGR_QOS_WALL = sacctmgr("Name", "MaxWall")

#: Every QoS with its walltime and TRES limits (``sacctmgr show qos``): what the spawn form offers.
SACCTMGR_QOS_LIMITS = sacctmgr("Name", "MaxWall", "MaxTRES", "MaxTRESPerNode")

#: The names of every QoS (``sacctmgr show qos``): the doctor's check of the site's.
SACCTMGR_QOS_NAMES = sacctmgr("Name")

#: Users' default accounts and associations, a row per association (``sacctmgr show user
#: U1,U2,... withassoc``): what the spawn form offers, for everyone who asked at once in one call.
SACCTMGR_ASSOCIATIONS = sacctmgr("User", "DefaultAccount", "Account", "Partition", "QOS", "DefaultQOS")

#: The walltime limits of a user's associations in an account (``sacctmgr show assoc where
#: user=U account=A``), by partition ("": the account's own): the extension helper's.
SACCTMGR_ASSOC_WALLS = sacctmgr("Partition", "MaxWall")

#: Accounts by name (``sacctmgr show account A``; ``show assoc where user=U``: the user's accounts).
SACCTMGR_ACCOUNTS = sacctmgr("Account")

#: Users by name (``sacctmgr show user``): every user SLURM's database knows.
SACCTMGR_USERS = sacctmgr("User")

#: A user's default account (``sacctmgr show user U``).
SACCTMGR_DEFAULT_ACCOUNT = sacctmgr("DefaultAccount")

#: By the name the recorder of fixtures asks for.
BY_NAME = {
    "squeue": SQUEUE_JOBS,
    "sacct": SACCT_RECORDS,
    "workbench": SACCT_WORKBENCH_JOBS,
    "sinfo-partitions": SINFO_PARTITIONS,
    "qos-wall": SACCTMGR_QOS_WALL,
    "qos-limits": SACCTMGR_QOS_LIMITS,
    "qos-names": SACCTMGR_QOS_NAMES,
    "associations": SACCTMGR_ASSOCIATIONS,
    "assoc-walls": SACCTMGR_ASSOC_WALLS,
    "accounts": SACCTMGR_ACCOUNTS,
    "users": SACCTMGR_USERS,
    "default-account": SACCTMGR_DEFAULT_ACCOUNT,
}


def main(argv: list[str] | None = None) -> int:
    """Print the ``-o`` (sacctmgr: ``format=``) value of the format named (see :data:`BY_NAME`)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in BY_NAME:
        print(f"usage: formats.py {{{','.join(BY_NAME)}}}", file=sys.stderr)
        return 2
    print(BY_NAME[args[0]].option)
    return 0


if __name__ == "__main__":
    sys.exit(main())
