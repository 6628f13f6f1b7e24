"""What every spawner of one hub shares, built once when the hub is configured
(:func:`aifactory_workbench.hub.configure.update_spawner`) and handed to each spawner as its ``services``:
one SLURM client (one command counter, one node-address cache), one watch of the queue
for all servers, one cache of what the cluster offers and of expected starts, the audit log
and the workshops' registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.spawners.alternatives import StartCache
from aifactory_workbench.spawners.discovery import Discovery
from aifactory_workbench.spawners.gallery import Gallery
from aifactory_workbench.spawners.seats import Registry
from aifactory_workbench.spawners.watcher import JobWatcher


class AuditLog(Protocol):
    def record(self, event: str, **fields: Any) -> None: ...


@dataclass
class Services:
    slurm: Slurm
    watcher: JobWatcher
    discovery: Discovery
    starts: StartCache  # SLURM's expected starts per form state (the estimate and its alternatives)
    audit: AuditLog | None = None
    workshops: Registry | None = None  # whose seats get a workshop's preset and materials
    gallery: Gallery | None = None  # published notebooks a user may launch

    def __deepcopy__(self, memo: dict[int, Any]) -> Services:
        """Shared, never copied: traitlets deep-copies each config value for every instance, which
        would give each spawner its own cache and its own squeue loop."""
        return self

    @classmethod
    def build(
        cls,
        *,
        job_name: str,
        poll_interval: float,
        startup_poll_interval: float,
        discovery_cache: float,
        audit: AuditLog | None = None,
        slurm: Slurm | None = None,
        workshops: Registry | None = None,
        gallery: Gallery | None = None,
    ) -> Services:
        slurm = slurm or Slurm()
        return cls(
            slurm=slurm,
            watcher=JobWatcher(slurm, job_name, interval=poll_interval, fast_interval=startup_poll_interval),
            discovery=Discovery(slurm, ttl=discovery_cache),
            starts=StartCache(ttl=discovery_cache),
            audit=audit,
            workshops=workshops,
            gallery=gallery,
        )
