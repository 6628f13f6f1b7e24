"""One scheduler query for every server: the hub's shared view of its JupyterLab jobs.

Stock batchspawner runs ``squeue`` once per server per poll interval (and twice a second
per starting server).  Here one loop per hub asks for all of the hub's jobs at once; every
spawner's ``poll()`` and start-up wait read that snapshot.  The loop tightens its interval
while any job starts or stops, backs off while the scheduler fails, and tells a spawner at
once when its job has left the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

from aifactory_workbench.slurm.parsers import JobInfo, SlurmError

log = logging.getLogger(__name__)


class Seen(Enum):
    IN_QUEUE = "in queue"  # pending or running: the job holds or awaits resources
    GONE = "gone"  # a query made after its submission no longer lists it
    UNKNOWN = "unknown"  # no successful query since it was submitted


@dataclass(frozen=True)
class Snapshot:
    jobs: dict[str, JobInfo] = field(default_factory=dict)
    taken_at: float = 0.0  # wall-clock time of the last successful query
    error: str = ""  # why the latest query failed ("" when it succeeded)
    positions: dict[str, str] = field(default_factory=dict)  # pending job -> "k of n" in its partition

    def seen(self, job_id: str, submitted_at: float, owner: str) -> tuple[Seen, JobInfo | None]:
        """How the last query saw the job that ``owner`` submitted as ``job_id``; a job of that id
        but of another user (ids restart when a cluster is rebuilt) is not it."""
        info = self.jobs.get(job_id)
        if info is not None and info.user != owner:
            info = None
        if info is not None and (info.is_pending or info.is_running):
            return Seen.IN_QUEUE, info
        if self.taken_at > submitted_at:
            return Seen.GONE, info
        return Seen.UNKNOWN, info


class QueueReader(Protocol):
    """The queries the watcher makes (:class:`~aifactory_workbench.slurm.client.Slurm` has them)."""

    async def queue(self, job_name: str) -> dict[str, JobInfo]: ...
    async def jobs_by_id(self, job_ids: list[str]) -> dict[str, JobInfo]: ...
    async def queue_positions(self) -> dict[str, str]: ...


class Follower(Protocol):
    """Who follows a watched job (a server's :class:`~aifactory_workbench.spawners.job_engine.JobEngine`)."""

    owner: str

    @property
    def submitted_at(self) -> float: ...

    def job_gone(self) -> None:
        """A query made after the job's submission no longer lists it."""


class JobWatcher:
    """One per hub (built in spawners.services), shared by all its spawners' job engines."""

    max_backoff = 60.0
    position_interval = 10.0  # seconds between queries of pending jobs' queue positions

    def __init__(self, slurm: QueueReader, job_name: str, interval: float, fast_interval: float) -> None:
        self.slurm = slurm
        self.job_name = job_name
        self.interval = interval
        self.fast_interval = fast_interval
        self.snapshot = Snapshot()
        self.failures = 0
        self._attempted_at = 0.0
        self._positions_at = 0.0
        self._watched: dict[str, Follower] = {}  # job id -> who follows it
        self._closely: set[str] = set()  # job ids starting or stopping
        self._lock = asyncio.Lock()
        self._refreshed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- who is watched --------------------------------------------------------------
    def watch(self, job_id: str, follower: Follower, *, closely: bool = False) -> None:
        self._watched[job_id] = follower
        self.follow_closely(job_id, closely)
        self._ensure_loop()

    def unwatch(self, job_id: str) -> None:
        self._watched.pop(job_id, None)
        self._closely.discard(job_id)

    def follow_closely(self, job_id: str, on: bool = True) -> None:
        """While a job starts or stops, refresh at the fast interval (its engine follows it)."""
        if on:
            self._closely.add(job_id)
            self._wake.set()
        else:
            self._closely.discard(job_id)

    def refresh_soon(self) -> None:
        """Something changed (a job reported its port): refresh now."""
        self._wake.set()

    # -- queries ---------------------------------------------------------------------
    async def refresh(self) -> Snapshot:
        """Query the scheduler once; concurrent callers share the query in flight."""
        if self._lock.locked():
            async with self._lock:
                return self.snapshot
        async with self._lock:
            self._attempted_at = time.time()
            try:
                jobs = await self.slurm.queue(self.job_name)
                # A job renamed behind the hub's back (scontrol update name=...) is still ours.
                missing = [job_id for job_id in self._watched if job_id not in jobs]
                if missing:
                    jobs |= await self.slurm.jobs_by_id(missing)
            except SlurmError as e:
                self.failures += 1
                self.snapshot = replace(self.snapshot, error=str(e))
                log.warning("Scheduler query failed (%d in a row): %s", self.failures, e)
            else:
                self.failures = 0
                self.snapshot = Snapshot(jobs, self._attempted_at, positions=await self._positions(jobs))
        async with self._refreshed:
            self._refreshed.notify_all()
        return self.snapshot

    async def _positions(self, jobs: dict[str, JobInfo]) -> dict[str, str]:
        """Queue positions, asked (one query for all) only while a job pends, at most every position_interval."""
        if not any(j.is_pending for j in jobs.values()):
            return {}
        if time.time() - self._positions_at < self.position_interval:
            return self.snapshot.positions
        self._positions_at = time.time()
        try:
            return await self.slurm.queue_positions()
        except SlurmError as e:
            log.warning("Queue positions unknown: %s", e)
            return self.snapshot.positions

    async def current(self, max_age: float) -> Snapshot:
        """The snapshot, refreshed first if no query was tried within ``max_age`` seconds.

        A query in flight is waited for: its start counts as an attempt, but until it
        answers the snapshot is older (at hub start-up: empty)."""
        if self._lock.locked() or time.time() - self._attempted_at > max_age:
            return await self.refresh()
        return self.snapshot

    async def next_snapshot(self, timeout: float) -> Snapshot:
        """Wait for the loop's next query (at most ``timeout`` seconds)."""
        self._ensure_loop()
        async with self._refreshed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._refreshed.wait()
        return self.snapshot

    # -- the loop --------------------------------------------------------------------
    def _ensure_loop(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    def pause(self) -> float:
        if self.failures:
            return min(self.max_backoff, self.interval * 2.0 ** (self.failures - 1))
        return self.fast_interval if self._closely else self.interval

    async def _loop(self) -> None:
        while self._watched:
            snapshot = await self.refresh()
            if not snapshot.error:
                self._notify_gone(snapshot)
            self._wake.clear()
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that
            # arrives as the event is set, and the loop would outlive the hub's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.pause()):
                    await self._wake.wait()

    def _notify_gone(self, snapshot: Snapshot) -> None:
        """Tell the hub now, not at the spawner's next own poll, that a job has ended."""
        for job_id, follower in list(self._watched.items()):
            if job_id in self._closely:
                continue  # start() and stop() follow their own job
            seen, _ = snapshot.seen(job_id, follower.submitted_at, follower.owner)
            if seen is Seen.GONE:
                self.unwatch(job_id)
                follower.job_gone()
