"""The hub's one memory of what the cluster offers (one per hub, built in spawners.services).

What :mod:`~aifactory_workbench.slurm.choices` decides from, asked of SLURM as seldom as a
class's burst needs:

* **Never older than the site's ``discovery_cache``** (``ttl``): an answer is used for ``ttl``
  seconds from the moment it was asked, never longer.
* **Refreshed in the background**: an answer past half its ``ttl`` is still used, and asked
  again beside the page that used it, so that a hub in use seldom makes a person wait for
  ``scontrol`` and ``sacctmgr`` (only the first page after a quiet spell does).
* **Asked once however many ask at once**: the pages that find the same answer missing all
  await one call (a burst of 50 forms on a cold hub is one round of the cluster's commands,
  not 50); one that goes away does not end it for the others.
* **The nodes' room, fresher**: node records (what jobs hold on each node) are asked at most
  every :data:`NODES_TTL` seconds, however many forms say what holds a request; the partitions'
  nodes, names and features come from the same records.
* **Everyone's associations in one call**: the users whose accounts are missing while one
  ``sacctmgr`` runs are asked together in the next (a class signing in within a second costs
  one or two calls to SLURM's database, not one each); a lone user waits for no one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, cast

from aifactory_workbench.slurm.choices import Choices, ClusterRecords, choices_from, node_names
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.values import user_groups
from aifactory_workbench.spawners.environments import list_environments
from aifactory_workbench.spawners.room import NodeRoom, rooms

log = logging.getLogger(__name__)

T = TypeVar("T")
#: At most this many users' environment listings run at once (each a sudo and a Python on the
#: login node, as the user): others wait their turn.
MAX_LISTINGS = 4
#: At most this many users' names on one sacctmgr command line; more wait for the next call.
MAX_USERS_PER_CALL = 100
#: Node records are used at most this many seconds (and never past ``ttl``): the room a form
#: says a request waits for moves as jobs start and end.
NODES_TTL = 10.0
#: What a user's association rows are: (default account, rows of Account, Partition, QOS, DefaultQOS).
UserAssociations = tuple[str, list[dict[str, str]]]


class Batches(Generic[T]):
    """Keys asked while one call runs are asked together in the next: ``fetch`` gets a list of
    keys (at most ``most``) and returns a value for each. A lone key is asked at once."""

    def __init__(self, fetch: Callable[[list[str]], Awaitable[Mapping[str, T]]], most: int) -> None:
        self._fetch = fetch
        self._most = most
        self._waiting: dict[str, asyncio.Future[T]] = {}
        self._runner: asyncio.Future[None] | None = None

    def get(self, key: str) -> Awaitable[T]:
        """``key``'s value from the next call (the one already waiting for it, if any)."""
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
        return asyncio.shield(future)

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = dict(itertools.islice(self._waiting.items(), self._most))
                for key in batch:
                    del self._waiting[key]
                await self._answer(batch)
        finally:
            self._runner = None

    async def _answer(self, batch: dict[str, asyncio.Future[T]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except Exception as e:  # every waiter hears it, and the next batch is still asked
            for future in batch.values():
                future.set_exception(e)
                future.add_done_callback(_retrieved)
        else:
            for key, future in batch.items():
                future.set_result(found[key])


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's failure as heard (its waiters may all have gone away)."""
    if not future.cancelled():
        future.exception()


class Discovery:
    """Asks the cluster for partitions, nodes, QoS and reservations at most once per half
    ``ttl`` while it is used, and for a user's associations likewise (see the module's rules)."""

    def __init__(self, slurm: Slurm, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.slurm = slurm
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}  # key -> (when it was asked, the answer)
        self._asking: dict[str, asyncio.Future[Any]] = {}  # key -> the call running for it
        self._listings = asyncio.Semaphore(MAX_LISTINGS)
        self._associations: Batches[UserAssociations] = Batches(self._users_associations, MAX_USERS_PER_CALL)

    async def _cached(self, key: str, fetch: Callable[[], Awaitable[T]], ttl: float | None = None) -> T:
        """``key``'s answer: the cached one while younger than ``ttl`` (the site's unless a
        shorter one is given; asked again in the background past half of it), else the one call
        running for it (started if none)."""
        ttl = self.ttl if ttl is None else min(ttl, self.ttl)
        hit = self._cache.get(key)
        age = self.clock() - hit[0] if hit else math.inf
        if hit and age < ttl:
            if age >= ttl / 2:
                self._ask(key, fetch)
            return cast(T, hit[1])  # what this key's fetch returned
        return cast(T, await asyncio.shield(self._ask(key, fetch)))

    def _ask(self, key: str, fetch: Callable[[], Awaitable[T]]) -> asyncio.Future[Any]:
        running = self._asking.get(key)
        if running is None:
            running = self._asking[key] = asyncio.ensure_future(self._fetch_into(key, fetch))
            running.add_done_callback(lambda done: self._asked(key, done))
        return running

    async def _fetch_into(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        asked = self.clock()  # the answer's age counts from the question
        value = await fetch()
        self._cache[key] = (asked, value)
        return value

    def _asked(self, key: str, done: asyncio.Future[Any]) -> None:
        self._asking.pop(key, None)
        if not done.cancelled() and done.exception() is not None:
            log.warning("asking the cluster for %s failed: %s", key, done.exception())

    async def _cluster(self) -> ClusterRecords:
        parts, nodes, res, qos = await asyncio.gather(
            self.slurm.cluster_records("partition"),
            self._nodes(),
            self.slurm.cluster_records("res"),
            self.slurm.qos_limits(),
        )
        return ClusterRecords(parts, nodes, {q["Name"]: q for q in qos}, res)

    async def _nodes(self) -> list[dict[str, str]]:
        return await self._cached("nodes", lambda: self.slurm.cluster_records("node"), ttl=NODES_TTL)

    async def rooms(self, partition: str) -> list[NodeRoom]:
        """The room of the partition's nodes that may take a job now (:func:`~aifactory_workbench.spawners.room.rooms`),
        from node records at most :data:`NODES_TTL` seconds old."""
        return rooms(await self._nodes(), partition)

    async def _users_associations(self, users: list[str]) -> dict[str, UserAssociations]:
        return await self.slurm.associations(users)

    async def environments(self, user: str) -> dict[str, Any]:
        """The user's environments (spawners/environments.py), reused like the rest, a failed
        listing too: a listing that hangs costs the hub one try per ``ttl``. However many pages
        ask at once, one listing per user runs, and at most :data:`MAX_LISTINGS` at once."""
        return await self._cached(f"environments:{user}", lambda: self._list(user))

    async def _list(self, user: str) -> dict[str, Any]:
        async with self._listings:
            return await list_environments(self.slurm, user)

    async def account_usage(self, account: str, since: str) -> list[dict[str, str]]:
        """An account's jobs since ``since`` (sacct), reused like the rest."""
        return await self._cached(f"usage:{account}:{since}", lambda: self.slurm.account_usage(account, since))

    async def node_names(self, partition: str) -> list[str]:
        """Every name and address of the partition's nodes (for server certificates)."""
        return node_names((await self._cached("cluster", self._cluster)).nodes, partition)

    async def for_user(self, user: str) -> Choices:
        """What ``user`` may ask for now."""
        cluster = await self._cached("cluster", self._cluster)
        default_account, rows = await self._cached(f"user:{user}", lambda: self._associations.get(user))
        return choices_from(cluster, user, default_account, rows, user_groups(user))
