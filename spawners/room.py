"""What holds a waiting request: the room its partition's nodes have now, and what of it is short.

The one home of the rule the spawn form and the queued page show ("Waiting for memory on acc:
8 of 15.6 GB in use, 8 GB asked.") and the start-sooner choices follow (the request cut to what
a node has free).  Everything here is pure: the node records are ``scontrol show node -o``'s,
read by the caller.  A resource is said to hold the request only when every node that could run
it lacks that resource now; where a node's record does not say (no ``AllocMem``, GPUs not
counted), or the request names a reservation or node features whose nodes these rules do not
follow, nothing is said: better no reason than a false one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aifactory_workbench.slurm.choices import partition_nodes
from aifactory_workbench.slurm.job_fields import JobSettings
from aifactory_workbench.slurm.parsers import parse_gres_count, parse_tres
from aifactory_workbench.slurm.values import format_memory, parse_memory_mb

#: Node states in which a node runs no new job (any of these words in ``State``).
UNUSABLE = ("DOWN", "DRAIN", "FAIL", "MAINT", "NOT_RESPONDING", "POWER", "FUTURE", "REBOOT", "RESERVED")
#: The resources, in the order the reason names them, with how one is written.
RESOURCES = ("memory", "gpus", "cpus")


@dataclass(frozen=True)
class Amount:
    """One resource of a node: its total and what jobs hold now (MB for memory)."""

    total: int
    used: int

    @property
    def free(self) -> int:
        return max(0, self.total - self.used)


@dataclass(frozen=True)
class NodeRoom:
    """A node's memory, GPUs and cores; None where its record does not say."""

    name: str
    memory: Amount | None
    gpus: Amount | None
    cpus: Amount | None

    def amount(self, resource: str) -> Amount | None:
        found: Amount | None = getattr(self, resource)
        return found


@dataclass(frozen=True)
class Hold:
    """What holds a request: the resources every node that could run it lacks, and in words."""

    resources: tuple[str, ...]
    text: str


def _int(record: dict[str, str], key: str) -> int | None:
    value = record.get(key, "")
    return int(value) if value.isdigit() else None


def _amount(total: int | None, used: int | None) -> Amount | None:
    return Amount(total, used) if total is not None and used is not None else None


def _gpus(record: dict[str, str]) -> Amount | None:
    """GPUs from ``Gres`` and ``GresUsed`` (``scontrol -d``) or, where GPUs are a TRES of the
    node (``CfgTRES``), ``AllocTRES``; None when the record does not say how many are used."""
    total = parse_gres_count(record.get("Gres", ""))
    if "GresUsed" in record:
        return Amount(total, parse_gres_count(record["GresUsed"]))
    if "gres/gpu" in parse_tres(record.get("CfgTRES", "")):
        used = parse_tres(record.get("AllocTRES", "")).get("gres/gpu", "0")
        return Amount(total, int(used)) if used.isdigit() else None
    return Amount(0, 0) if total == 0 else None


def node_room(record: dict[str, str]) -> NodeRoom:
    """One ``scontrol show node`` record's room (``RealMemory``/``AllocMem``, GPUs, ``CPUTot``/``CPUAlloc``)."""
    return NodeRoom(
        record.get("NodeName", ""),
        _amount(_int(record, "RealMemory"), _int(record, "AllocMem")),
        _gpus(record),
        _amount(_int(record, "CPUTot"), _int(record, "CPUAlloc")),
    )


def usable(record: dict[str, str]) -> bool:
    """Whether the node may take a new job (not down, drained, reserved, powered off...)."""
    state = record.get("State", "")
    return bool(state) and not state.endswith("*") and not any(word in state for word in UNUSABLE)


def rooms(nodes: list[dict[str, str]], partition: str) -> list[NodeRoom]:
    """The room of each node of ``partition`` that may take a new job now."""
    return [node_room(n) for n in partition_nodes(nodes, partition) if usable(n)]


def asked(s: JobSettings) -> dict[str, int]:
    """What a request asks of one node, by resource (memory in MB)."""
    return {"memory": parse_memory_mb(s.memory) or 0, "gpus": s.gpus, "cpus": s.cpus}


def _could_run(room: NodeRoom, wants: dict[str, int]) -> bool:
    """Whether the node could ever run the request: no resource it knows is too small in total."""
    return all((amount := room.amount(r)) is None or amount.total >= wants[r] for r in RESOURCES)


def _short(room: NodeRoom, resource: str, wants: dict[str, int]) -> bool:
    amount = room.amount(resource)
    return amount is not None and amount.free < wants[resource]


def nodes_for(s: JobSettings, found: list[NodeRoom]) -> list[NodeRoom]:
    """The nodes that could run the request, or none when where it runs is not for these rules."""
    if s.reservation or s.constraint:
        return []
    return [room for room in found if _could_run(room, asked(s))]


def short_everywhere(s: JobSettings, found: list[NodeRoom]) -> tuple[str, ...]:
    """The resources that every node which could run the request lacks now (none: unsure, or room)."""
    nodes, wants = nodes_for(s, found), asked(s)
    if not nodes:
        return ()
    return tuple(r for r in RESOURCES if wants[r] and all(_short(room, r, wants) for room in nodes))


def _gb(mb: int) -> str:
    text = f"{mb / 1024:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _size(resource: str, n: int) -> str:
    """An amount in words: ``7.6 GB`` (from MB), ``1 GPU``, ``20 cores``."""
    if resource == "memory":
        return f"{_gb(n)} GB"
    word = "GPU" if resource == "gpus" else "core"
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _part(resource: str, nodes: list[NodeRoom], wants: dict[str, int]) -> str:
    """One resource's words: one node's use, or the most free on any of several."""
    amounts = [a for room in nodes if (a := room.amount(resource)) is not None]
    asked_text = f"{_size(resource, wants[resource])} asked"
    if len(amounts) == 1:
        (one,) = amounts
        used = _gb(one.used) if resource == "memory" else str(one.used)
        return f"{used} of {_size(resource, one.total)} in use, {asked_text}"
    most = max(a.free for a in amounts)
    return f"at most {_size(resource, most)} free on any of its {len(amounts)} nodes, {asked_text}"


def holds(s: JobSettings, found: list[NodeRoom]) -> Hold | None:
    """What holds the request ``s`` on its partition's nodes ``found`` (:func:`rooms`), or None
    when no resource is short on every node that could run it, or the records do not say."""
    short = short_everywhere(s, found)
    if not short:
        return None
    nodes, wants = nodes_for(s, found), asked(s)
    names = " and ".join({"memory": "memory", "gpus": "GPUs", "cpus": "cores"}[r] for r in short)
    parts = "; ".join(_part(r, nodes, wants) for r in short)
    return Hold(short, f"Waiting for {names} on {s.partition}: {parts}.")


def _cut(s: JobSettings, room: NodeRoom, floor_mb: int) -> dict[str, int | str] | None:
    """The request cut to what ``room`` has free (memory to a whole GB), or None when the cut
    would leave fewer than one core, no GPU of those asked, or memory under ``floor_mb``."""
    wants: dict[str, int] = asked(s)
    change: dict[str, int | str] = {}
    for r in RESOURCES:
        amount = room.amount(r)
        if amount is None or amount.free >= wants[r]:
            continue
        if r == "memory":
            fits = amount.free // 1024 * 1024
            if fits < floor_mb:
                return None
            change["memory"] = format_memory(fits)
        elif amount.free < 1:
            return None
        else:
            change[r] = amount.free
    return change


def fits_now(s: JobSettings, found: list[NodeRoom], floor_mb: int) -> dict[str, int | str]:
    """The smallest cut of the request that one node could run now (the node that keeps the
    most GPUs, then memory, then cores); ``{}`` when it fits as it is, or no cut keeps enough."""
    cuts = [c for room in nodes_for(s, found) if (c := _cut(s, room, floor_mb)) is not None]
    if not cuts or {} in cuts:
        return {}
    wants = asked(s)

    def kept(change: dict[str, int | str]) -> tuple[int, ...]:
        memory = parse_memory_mb(str(change.get("memory", s.memory))) or 0
        return (int(change.get("gpus", wants["gpus"])), memory, int(change.get("cpus", wants["cpus"])))

    return max(cuts, key=kept)
