"""SLURM administration for workshops, run by root through ``aifactory-workshop``: accounts,
associations and reservations.  Every command is an argument list run by the one client
(:class:`aifactory_workbench.slurm.client.Slurm`); each ``ensure_``/``remove_`` call may be repeated harmlessly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aifactory_workbench.slurm.client import Slurm, squeue_argv
from aifactory_workbench.slurm.parsers import JobInfo, SlurmError, parse_scontrol_records, parse_squeue
from aifactory_workbench.slurm.values import parse_memory_mb

#: The QoS a workshop account offers (the mini cluster's and a site's usual two).
WORKSHOP_QOS = "normal,interactive"


@dataclass
class SlurmAdmin:
    slurm: Slurm = field(default_factory=Slurm)

    def _run(self, *argv: str) -> str:
        return self.slurm.run_blocking(list(argv)).stdout

    def account_exists(self, account: str) -> bool:
        return account in self._run("sacctmgr", "-n", "-P", "show", "account", account, "format=Account").split()

    def ensure_account(self, account: str, description: str) -> None:
        if not self.account_exists(account):
            self._run(
                "sacctmgr", "-i", "add", "account", account, f"description={description}", f"organization={account}"
            )
        self._run("sacctmgr", "-i", "modify", "account", account, "set", f"qos={WORKSHOP_QOS}", "defaultqos=normal")

    def associations(self, user: str) -> list[str]:
        """The accounts ``user`` has an association with."""
        out = self._run("sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={user}", "format=Account")
        return [a for a in out.split() if a]

    def users(self) -> set[str]:
        """Every user SLURM's database knows (a workshop must not take one over)."""
        return set(self._run("sacctmgr", "-n", "-P", "show", "user", "format=User").split())

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
