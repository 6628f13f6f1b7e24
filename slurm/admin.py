"""SLURM administration, run by root: for workshops (``aifactory-workshop``) accounts,
associations and reservations; for the extension helper (root/extend_job.py) the walltime limits
SLURM holds a job to.  Every command is an argument list run by the one client
(:class:`aifactory_workbench.slurm.client.Slurm`), in a format of :mod:`aifactory_workbench.slurm.formats`
read by a parser of :mod:`aifactory_workbench.slurm.parsers`; each ``ensure_``/``remove_`` call may
be repeated harmlessly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aifactory_workbench.slurm.client import Slurm, squeue_argv
from aifactory_workbench.slurm.formats import (
    SACCTMGR_ACCOUNTS,
    SACCTMGR_ASSOC_WALLS,
    SACCTMGR_QOS_WALL,
    SACCTMGR_USERS,
    sacctmgr_argv,
)
from aifactory_workbench.slurm.parsers import (
    JobInfo,
    SlurmError,
    parse_association_wall,
    parse_column,
    parse_job_account,
    parse_partition_wall,
    parse_qos_wall,
    parse_scontrol_records,
    parse_squeue,
)
from aifactory_workbench.slurm.values import parse_memory_mb

#: The QoS a workshop account offers (the mini cluster's and a site's usual two).
WORKSHOP_QOS = "normal,interactive"


@dataclass
class SlurmAdmin:
    slurm: Slurm = field(default_factory=Slurm)

    def _run(self, *argv: str) -> str:
        return self.slurm.run_blocking(list(argv)).stdout

    def account_exists(self, account: str) -> bool:
        return account in parse_column(
            self._run(*sacctmgr_argv(SACCTMGR_ACCOUNTS, "account", account)), SACCTMGR_ACCOUNTS
        )

    def ensure_account(self, account: str, description: str) -> None:
        if not self.account_exists(account):
            self._run(
                "sacctmgr", "-i", "add", "account", account, f"description={description}", f"organization={account}"
            )
        self._run("sacctmgr", "-i", "modify", "account", account, "set", f"qos={WORKSHOP_QOS}", "defaultqos=normal")

    def associations(self, user: str) -> list[str]:
        """The accounts ``user`` has an association with."""
        out = self._run(*sacctmgr_argv(SACCTMGR_ACCOUNTS, "assoc", "where", f"user={user}"))
        return parse_column(out, SACCTMGR_ACCOUNTS)

    def users(self) -> set[str]:
        """Every user SLURM's database knows (a workshop must not take one over)."""
        return set(parse_column(self._run(*sacctmgr_argv(SACCTMGR_USERS, "user")), SACCTMGR_USERS))

    def ensure_user(self, user: str, account: str) -> None:
        """``user`` may run jobs in ``account``, its default account."""
        if account not in self.associations(user):
            self._run("sacctmgr", "-i", "add", "user", user, f"account={account}", f"defaultaccount={account}")

    def remove_user(self, user: str) -> None:
        if self.associations(user):
            self._run("sacctmgr", "-i", "delete", "user", user)

    def remove_account(self, account: str) -> None:
        if self.account_exists(account):
            self._run("sacctmgr", "-i", "delete", "account", account)

    def reservation(self, name: str) -> dict[str, str] | None:
        try:
            records = parse_scontrol_records(self._run("scontrol", "show", "reservation", name, "-o"))
        except SlurmError as e:
            if "not found" in str(e).lower():
                return None
            raise
        return next((r for r in records if r.get("ReservationName") == name), None)

    def ensure_reservation(self, name: str, *, start: str, end: str, account: str, partition: str, cores: int) -> None:
        """``cores`` cores of ``partition`` from ``start`` to ``end``, for the jobs of ``account``.

        SLURM cannot change a reservation of cores: one that ends or holds otherwise is made
        again (refused while jobs run in it: the message says so)."""
        held = self.reservation(name)
        if held is not None:
            if (held.get("EndTime"), held.get("CoreCnt"), held.get("Accounts")) == (end, str(cores), account):
                return
            self._run("scontrol", "delete", f"ReservationName={name}")
        spec = [f"StartTime={start}", f"EndTime={end}", f"Accounts={account}", f"CoreCnt={cores}"]
        self._run("scontrol", "create", "reservation", f"ReservationName={name}", f"PartitionName={partition}", *spec)

    def reserved_node_memory(self, name: str) -> dict[str, int]:
        """Each node that reservation ``name`` holds cores on, with its memory in MB (RealMemory):
        a reservation of cores holds no memory, so the seats on a node share what it has."""
        held = self.reservation(name)
        if held is None or not held.get("Nodes") or held["Nodes"] == "(null)":
            return {}
        nodes = self._run("scontrol", "show", "hostnames", held["Nodes"]).split()
        records = parse_scontrol_records(self._run("scontrol", "show", "node", ",".join(nodes), "-o"))
        return {r["NodeName"]: parse_memory_mb(r.get("RealMemory", "")) or 0 for r in records if "NodeName" in r}

    def remove_reservation(self, name: str) -> None:
        if self.reservation(name) is not None:
            self._run("scontrol", "delete", f"ReservationName={name}")

    def jobs_of(self, users: list[str]) -> dict[str, JobInfo]:
        """Every job of these users that the controller still holds."""
        if not users:
            return {}
        return parse_squeue(self._run(*squeue_argv("-u", ",".join(users))))

    def cancel_jobs_of(self, user: str) -> None:
        self._run("scancel", "-u", user)

    # -- walltime limits, for the extension helper ----------------------------------------
    def qos_max_wall(self, qos: str) -> int | None:
        """The ``MaxWall`` of QoS ``qos``, in seconds (None: no limit, or no such QoS)."""
        return parse_qos_wall(self._run(*sacctmgr_argv(SACCTMGR_QOS_WALL, "qos", qos)), qos)

    def partition_max_time(self, partition: str) -> tuple[int | None, str]:
        """The partition's ``MaxTime`` (None: no limit) and the name of its own QoS ("": none)."""
        return parse_partition_wall(self._run("scontrol", "show", "partition", partition, "-o"))

    def job_account(self, job_id: str, job_name: str) -> str:
        """The account of job ``job_id``, which must carry the name ``job_name`` (see
        :func:`~aifactory_workbench.slurm.parsers.parse_job_account`)."""
        return parse_job_account(self._run("scontrol", "show", "job", job_id, "-o"), job_id, job_name)

    def association_max_wall(self, user: str, account: str, partition: str) -> int | None:
        """The ``MaxWall`` of the association a job of ``user`` in ``account`` runs under in
        ``partition`` (see :func:`~aifactory_workbench.slurm.parsers.parse_association_wall`)."""
        where = ["where", f"user={user}", f"account={account}"]
        return parse_association_wall(self._run(*sacctmgr_argv(SACCTMGR_ASSOC_WALLS, "assoc", *where)), partition)
