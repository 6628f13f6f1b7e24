"""What each user may ask for, discovered from the live cluster, and the check against it.

The form offers, and the hub accepts, only what SLURM would let this user run: partitions
open to their accounts and groups (with limits from the partition, its nodes and its QoS),
the accounts and QoS of their associations, and reservations that name them or their
accounts.  Pure: the records come from :mod:`~aifactory_workbench.spawners.discovery`, the
hub's one memory of what the cluster said, or, in a JupyterLab job, from SLURM asked there
(lab/batch.py: the notebook-job dialog's limits follow the same rules as the spawn form's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from aifactory_workbench.slurm.display import duration_text, hours_data
from aifactory_workbench.slurm.job_fields import JobSettings, OptionError
from aifactory_workbench.slurm.parsers import core_hours, parse_gres_count, parse_tres
from aifactory_workbench.slurm.values import (
    format_duration,
    format_memory,
    parse_duration,
    parse_memory_mb,
)

Records = list[dict[str, str]]
_UNSET = ("", "(null)", "ALL", "UNLIMITED", "n/a")


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    max_walltime: int | None  # seconds; None: no limit
    max_cpus: int
    max_memory_mb: int
    max_gpus: int

    def limits_text(self) -> str:
        wall = duration_text(self.max_walltime) if self.max_walltime else "no walltime limit"
        gpus = f"{self.max_gpus} GPUs" if self.max_gpus else "no GPUs"
        return f"up to {self.max_cpus} cores, {format_memory(self.max_memory_mb)} of memory, {gpus}, {wall}"


@dataclass(frozen=True)
class Reservation:
    name: str
    partition: str  # "" when the reservation is not tied to a partition
    start: str
    end: str


@dataclass(frozen=True)
class Association:
    account: str
    partition: str  # "" for every partition
    qos: tuple[str, ...]
    default_qos: str = ""  # what a job that names no QoS gets


@dataclass(frozen=True)
class Choices:
    """One user's options; :meth:`check` refuses anything outside them."""

    user: str
    partitions: dict[str, Partition]
    associations: tuple[Association, ...]
    default_account: str
    qos_walltime: dict[str, int | None]
    reservations: dict[str, Reservation]

    def accounts(self, partition: str | None = None) -> list[str]:
        found = [a.account for a in self.associations if partition is None or a.partition in ("", partition)]
        return sorted(set(found), key=lambda a: (a != self.default_account, a))

    def qos(self, account: str, partition: str) -> list[str]:
        return sorted(
            {q for a in self.associations if a.account == account and a.partition in ("", partition) for q in a.qos}
        )

    def default_qos(self, account: str, partition: str) -> str:
        found = [a.default_qos for a in self.associations if a.account == account and a.partition in ("", partition)]
        return next((q for q in found if q), "")

    def max_walltime(self, partition: Partition, qos: str) -> int | None:
        limits = [w for w in (partition.max_walltime, self.qos_walltime.get(qos)) if w]
        return min(limits) if limits else None

    def qos_for(self, s: JobSettings) -> str:
        """The QoS a job of these settings runs in: its own, else its account's default on its partition."""
        return s.qos or self.default_qos(s.account or self.default_account, s.partition)

    def limits(self, s: JobSettings) -> dict[str, Any]:
        """What :meth:`check` holds a job of these settings to on its partition (known to the
        user: :meth:`check` passes it), as a page shows it: the most cores, memory (as the memory
        field takes it), GPUs and walltime ("" for none), with the QoS that sets that walltime,
        and all of it in words (``text``)."""
        part = self.partitions[s.partition]
        qos = self.qos_for(s)
        wall = self.max_walltime(part, qos)
        walltime = format_duration(wall) if wall else ""
        with_qos = f" with QoS {qos}" if qos else ""
        gpus = f"{part.max_gpus} GPUs" if part.max_gpus else "no GPUs"
        wall_text = f"at most {duration_text(wall)}{with_qos}" if wall else "no walltime limit"
        return {
            "partition": part.name,
            "qos": qos,
            "cpus": part.max_cpus,
            "memory": format_memory(part.max_memory_mb),
            "gpus": part.max_gpus,
            "walltime": walltime,
            "text": f"On {part.name}: up to {part.max_cpus} cores, {format_memory(part.max_memory_mb)} of memory, "
            f"{gpus}, {wall_text}.",
        }

    def check(self, s: JobSettings) -> None:
        """Raise OptionError naming the field, the value and what this user may choose."""
        if s.partition not in self.partitions:
            raise OptionError("partition", s.partition, _one_of(self.partitions))
        part = self.partitions[s.partition]
        account = s.account or self.default_account
        if account not in self.accounts(part.name):
            raise OptionError("account", s.account, _one_of(self.accounts(part.name)))
        allowed_qos = self.qos(account, part.name)
        if s.qos and s.qos not in allowed_qos:
            raise OptionError("qos", s.qos, f"{_one_of(allowed_qos)} (for account {account})")
        _at_most("cpus", s.cpus, part.max_cpus, f"partition {part.name}")
        memory = parse_memory_mb(s.memory) or 0
        if memory > part.max_memory_mb:
            limit_text = f"at most {format_memory(part.max_memory_mb)} on partition {part.name}"
            raise OptionError("memory", s.memory, limit_text)
        if s.gpus and not part.max_gpus:
            with_gpus = [p.name for p in self.partitions.values() if p.max_gpus]
            raise OptionError("gpus", s.gpus, f"0 on partition {part.name}; GPUs are on {_one_of(with_gpus)}")
        _at_most("gpus", s.gpus, part.max_gpus, f"partition {part.name}")
        qos = self.qos_for(s)
        limit = self.max_walltime(part, qos)
        if limit and (parse_duration(s.walltime) or 0) > limit:
            with_qos = f"QoS {qos}" if qos else "the account's QoS"
            limit_text = f"at most {duration_text(limit)} on {part.name} with {with_qos}"
            raise OptionError("walltime", s.walltime, limit_text)
        if s.reservation:
            res = self.reservations.get(s.reservation)
            if res is None:
                open_ones = ", ".join(self.reservations)
                allowed = f'"" (none) or {open_ones}' if open_ones else '"" (no reservation is open to you)'
                raise OptionError("reservation", s.reservation, allowed)
            if res.partition and res.partition != part.name:
                raise OptionError("reservation", s.reservation, f"only with partition {res.partition}")

    def as_data(self) -> dict[str, Any]:
        """What the form's script needs to show limits and follow the partition chosen."""
        return {
            # The form shows sizes as the memory field takes them (format_memory), not its own way.
            "partitions": {
                name: asdict(p) | {"limits": p.limits_text(), "max_memory": format_memory(p.max_memory_mb)}
                for name, p in self.partitions.items()
            },
            "accounts": {p: {a: self.qos(a, p) for a in self.accounts(p)} for p in self.partitions},
            "default_account": self.default_account,
            "default_qos": {p: {a: self.default_qos(a, p) for a in self.accounts(p)} for p in self.partitions},
            "qos_walltime": self.qos_walltime,
            "reservations": {name: asdict(r) for name, r in self.reservations.items()},
        }


def cost(s: JobSettings) -> dict[str, Any]:
    """What a request costs if it runs its whole walltime, with the texts a page shows: the spawn
    form's estimate and the notebook-job dialog's."""
    seconds = parse_duration(s.walltime) or 0
    return {"hours": round(seconds / 3600, 2), **hours_data(core_hours(s.cpus, seconds), core_hours(s.gpus, seconds))}


def _one_of(names: Iterable[str]) -> str:
    listed = ", ".join(names)
    return f"one of {listed}" if listed else "nothing (none is open to you)"


def _at_most(name: str, value: int, limit: int, where: str) -> None:
    if value > limit:
        raise OptionError(name, value, f"at most {limit} on {where}")


def _number(text: str, default: int) -> int:
    return int(text) if text.isdigit() else default


def _names(text: str) -> set[str]:
    return set() if text in _UNSET else set(text.split(","))


def partition_nodes(nodes: list[dict[str, str]], partition: str) -> list[dict[str, str]]:
    """The nodes (``scontrol show node`` records) of a partition."""
    return [n for n in nodes if partition in n.get("Partitions", "").split(",")]


def partition_limits(record: dict[str, str], nodes: list[dict[str, str]], qos: dict[str, dict[str, str]]) -> Partition:
    """A partition's limits: the smallest of what its nodes have, it allows and its QoS allows."""
    name = record["PartitionName"]
    members = partition_nodes(nodes, name)
    cpus = max((_number(n.get("CPUTot", ""), 0) for n in members), default=0)
    memory = max((_number(n.get("RealMemory", ""), 0) for n in members), default=0)
    gpus = max((parse_gres_count(n.get("Gres", "")) for n in members), default=0)
    cpus = min(cpus, _number(record.get("MaxCPUsPerNode", ""), cpus))
    memory = min(memory, parse_memory_mb(record.get("MaxMemPerNode", "")) or memory)
    walltime = parse_duration(record.get("MaxTime", ""))
    part_qos = qos.get(record.get("QoS", ""), {})
    for field in ("MaxTRES", "MaxTRESPerNode"):
        tres = parse_tres(part_qos.get(field, ""))
        gpus = min(gpus, _number(tres.get("gres/gpu", ""), gpus))
        cpus = min(cpus, _number(tres.get("cpu", ""), cpus))
    qos_wall = parse_duration(part_qos.get("MaxWall", ""))
    if qos_wall:
        walltime = min(walltime or qos_wall, qos_wall)
    return Partition(name, record.get("Default") == "YES", walltime, cpus, memory, gpus)


def open_to(record: dict[str, str], accounts: set[str], groups: set[str]) -> bool:
    """Whether a partition admits someone with these accounts and groups."""
    if record.get("State") != "UP" or record.get("Hidden") == "YES" or record.get("RootOnly") == "YES":
        return False
    allow_acc, deny_acc = _names(record.get("AllowAccounts", "ALL")), _names(record.get("DenyAccounts", ""))
    usable = accounts - deny_acc
    if allow_acc:
        usable &= allow_acc
    allow_groups = _names(record.get("AllowGroups", "ALL"))
    return bool(usable) and (not allow_groups or bool(allow_groups & groups))


def reservation_for(record: dict[str, str], user: str, accounts: set[str], groups: set[str]) -> bool:
    """Whether the reservation names the user, one of their accounts or groups (``-x``: all but x)."""
    if record.get("State") not in ("ACTIVE", "INACTIVE"):
        return False
    for listed, mine in ((record.get("Users", ""), {user}), (record.get("Accounts", ""), accounts)):
        names = _names(listed)
        excluded = {n[1:] for n in names if n.startswith("-")}
        if excluded:
            return not (excluded & mine)
        if names & mine:
            return True
    return bool(_names(record.get("Groups", "")) & groups)


class ClusterRecords(NamedTuple):
    """What the cluster says of itself (``scontrol show partition/node/res``, ``sacctmgr show qos``)."""

    partitions: Records
    nodes: Records
    qos: dict[str, dict[str, str]]  # by name
    reservations: Records


def node_names(nodes: Records, partition: str) -> list[str]:
    """Every name and address of the partition's nodes (for server certificates)."""
    keys = ("NodeName", "NodeAddr", "NodeHostName")
    names = {n.get(key, "") for n in partition_nodes(nodes, partition) for key in keys}
    return sorted(name for name in names if name and name not in _UNSET)


def choices_from(cluster: ClusterRecords, user: str, default_account: str, rows: Records, groups: set[str]) -> Choices:
    """``user``'s options, from the cluster's records and the user's association ``rows``
    (Account, Partition, QOS, DefaultQOS) and Unix ``groups``."""
    associations = tuple(
        Association(r["Account"], r["Partition"], tuple(_names(r["QOS"])), r["DefaultQOS"]) for r in rows
    )
    accounts = {a.account for a in associations}
    partitions = {
        r["PartitionName"]: partition_limits(r, cluster.nodes, cluster.qos)
        for r in cluster.partitions
        if open_to(r, accounts, groups)
    }
    reservations = {
        r["ReservationName"]: Reservation(
            r["ReservationName"], "".join(_names(r.get("PartitionName", ""))), r["StartTime"], r["EndTime"]
        )
        for r in cluster.reservations
        if reservation_for(r, user, accounts, groups)
    }
    return Choices(
        user=user,
        partitions=dict(sorted(partitions.items(), key=lambda kv: (not kv[1].default, kv[0]))),
        associations=associations,
        default_account=default_account or (sorted(accounts)[0] if accounts else ""),
        qos_walltime={name: parse_duration(q.get("MaxWall", "")) for name, q in cluster.qos.items()},
        reservations=reservations,
    )
