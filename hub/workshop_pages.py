"""The hub's side of workshops: instructors reach their seats' servers (a group and a role per
workshop, RBAC), see them on one page and stop them all; ``aifactory-workshop`` tells the
running hub of a new or ended workshop through the admin-only API.

* ``POST /hub/api/aifactory/workshops/NAME`` (admins): give the instructors their seats now.
* ``DELETE`` the same: stop the seats' servers, forget the seats, the group and the role.
  A hub that was down during ``end`` does so when it starts, and within
  :data:`FORGET_EVERY` s of any end it was not told of (:func:`keep_forgetting_ended_seats`).
* ``/hub/workshops`` (instructors, admins): each seat's server, its state, a link into it,
  and "stop all".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from jupyterhub import orm, roles
from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web
from traitlets.log import get_logger

from aifactory_workbench.spawners.jupyterhub_compat import hub_started, running_hub
from aifactory_workbench.spawners.seats import ALL_SEATS_GROUP, FORGET_EVERY, Ended, Registry, Workshop

WORKSHOP_API_ROUTE = r"/api/aifactory/workshops/([a-z][a-z0-9]{1,15})"
WORKSHOP_PAGE_ROUTE = r"/workshops"


def group_of(db: Any, name: str) -> orm.Group:
    group = orm.Group.find(db, name)
    if group is None:
        group = orm.Group(name=name)
        db.add(group)
    return group


def workshop_groups(workshop: Workshop) -> dict[str, dict[str, list[str]]]:
    """The hub groups of one workshop, as JupyterHub's load_groups has them (read at start-up)."""
    return {workshop.group: {"users": list(workshop.seats)}}


class WorkshopAPIHandler(APIHandler):
    """POST: the workshop's group and instructors' role, now; DELETE: its seats' servers
    stopped and the seats, group and role gone from the hub."""

    def initialize(self, registry: Registry) -> None:
        self.registry = registry

    @needs_scope("admin:users")
    async def post(self, name: str) -> None:
        workshop = self.registry.workshops().get(name)
        if workshop is None:
            raise web.HTTPError(404, f"workshop {name} is not in the registry {self.registry.directory}")
        ended = self.registry.ended().get(name)
        if ended is not None:  # an earlier workshop of this name: its seats do not pass to this one's
            await forget_seats(self.db, self.users, self.stop_single_user, ended, ending=False)
        seats = [self.user_from_username(seat).orm_user for seat in workshop.seats]
        group_of(self.db, workshop.group).users = seats
        everyone = group_of(self.db, ALL_SEATS_GROUP)
        everyone.users = list({u.id: u for u in [*everyone.users, *seats]}.values())
        role = workshop.role()
        roles.create_role(self.db, {k: role[k] for k in ("name", "description", "scopes")})
        for instructor in workshop.instructors:
            roles.grant_role(self.db, self.user_from_username(instructor).orm_user, role["name"])
        self.db.commit()
        self.finish(
            {
                "message": f"{len(seats)} seats in group {workshop.group}; instructors "
                f"{', '.join(workshop.instructors)} reach their servers"
            }
        )

    @needs_scope("admin:users")
    async def delete(self, name: str) -> None:
        ended = self.registry.ended().get(name)
        if ended is None:
            raise web.HTTPError(404, f"workshop {name} has not ended (no {name}.ended in {self.registry.directory})")
        stopped, forgotten = await forget_seats(self.db, self.users, self.stop_single_user, ended, ending=True)
        self.finish({"message": f"workshop {name}: {stopped} servers stopped, {forgotten} seats forgotten by the hub"})


#: At most this many seats' servers stopped at once when a workshop ends (each a scancel).
STOPS_AT_ONCE = 10
_FORGETTING: dict[str, asyncio.Lock] = {}  # per workshop: its end (the API) and the hub's own look


async def forget_seats(
    db: Any, users: Any, stop: Callable[[Any, str], Awaitable[Any]], ended: Ended, ending: bool
) -> tuple[int, int]:
    """The hub users of an ended workshop's seats that the hub made before its end go, with
    their servers (stopped first, several at once), tokens and group memberships; so do the
    workshop's group and instructors' role when it is ending, or has not been made again.
    (servers, users). One workshop's seats are forgotten by one caller at a time: the end asked
    through the API and the hub's own look at ended workshops would otherwise both stop a seat
    and the second find its user gone (a 500 for the instructor's end)."""
    async with _FORGETTING.setdefault(ended.name, asyncio.Lock()):
        seats = [
            (seat, users[u]) for seat in ended.seats if (u := orm.User.find(db, seat)) and ended.made_before(u.created)
        ]
        limit = asyncio.Semaphore(STOPS_AT_ONCE)

        async def stop_servers(user: Any) -> int:
            async with limit:
                active = [name for name, spawner in list(user.spawners.items()) if spawner.active]
                for name in active:
                    await stop(user, name)
                return len(active)

        stopped = sum(await asyncio.gather(*(stop_servers(user) for _, user in seats)))
        forgotten = 0
        for seat, user in seats:
            if orm.User.find(db, seat) is not None:  # an admin may have deleted it meanwhile
                users.delete(user)
                forgotten += 1
        group = orm.Group.find(db, f"workshop-{ended.name}")
        if group is not None and (ending or not group.users):
            db.delete(group)
        role = f"workshop-{ended.name}-instructors"
        if ending and orm.Role.find(db, role) is not None:
            roles.delete_role(db, role)
        db.commit()
    return stopped, forgotten


def keep_forgetting_ended_seats(registry: Registry) -> asyncio.Task[None] | None:
    """In the hub (called while its configuration loads): once it has started, and whenever
    the registry changes, forget the seats of workshops that ended while it was down or
    without telling it. Outside a running hub (a check of the configuration): nothing."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    task = loop.create_task(_forget_ended(registry))
    _TASKS.add(task)
    return task


_TASKS: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


async def _forget_ended(registry: Registry) -> None:
    hub = running_hub()
    await hub_started(hub)  # it serves and has checked its servers

    async def stop(user: Any, server: str) -> None:
        await hub.proxy.delete_user(user, server)
        await user.stop(server)

    seen: dict[str, str] = {}
    while True:
        for ended in list(registry.ended().values()):
            if seen.get(ended.name) == ended.at:
                continue
            try:
                stopped, forgotten = await forget_seats(hub.db, hub.users, stop, ended, ending=False)
            except Exception:  # one workshop's trouble must not end the look for the others
                get_logger().exception("could not forget the seats of ended workshop %s", ended.name)
                continue
            seen[ended.name] = ended.at
            if forgotten:
                get_logger().info("workshop %s ended: %d seats, %d servers forgotten", ended.name, forgotten, stopped)
        await asyncio.sleep(FORGET_EVERY)


class WorkshopPage(BaseHandler):
    """The workshops the signed-in user leads (an admin: all), each seat with its server."""

    def initialize(self, registry: Registry) -> None:
        self.registry = registry

    def led(self) -> list[Workshop]:
        user = self.current_user
        if user.admin:
            return list(self.registry.workshops().values())
        return self.registry.led_by(user.name)

    def seat_rows(self, workshop: Workshop) -> list[dict[str, Any]]:
        rows = []
        for seat in workshop.seats:
            orm_user = orm.User.find(self.db, seat)
            user = self.users[orm_user] if orm_user is not None else None
            spawner = user.spawners.get("") if user is not None else None
            running = bool(spawner and spawner.ready)
            since = getattr(spawner, "submitted_at", 0.0) if spawner and spawner.active else 0.0
            rows.append(
                {
                    "seat": seat,
                    "state": "running" if running else ("starting" if spawner and spawner.active else "not started"),
                    "job": getattr(spawner, "job_id", "") if spawner and spawner.active else "",
                    "minutes": round((time.time() - since) / 60) if since else "",
                    "url": user.url if running and user is not None else "",
                }
            )
        return rows

    @web.authenticated
    async def get(self) -> None:
        workshops = [(w, self.seat_rows(w)) for w in self.led()]
        html = await self.render_template("workshops.html", workshops=workshops)
        self.finish(html)

    @web.authenticated
    async def post(self) -> None:
        """Stop every seat's server of the workshop named in the form (the XSRF check is JupyterHub's)."""
        name = self.get_body_argument("workshop", "")
        workshop = next((w for w in self.led() if w.name == name), None)
        if workshop is None:
            raise web.HTTPError(403, f"you lead no workshop named {name!r}")
        for seat in workshop.seats:
            orm_user = orm.User.find(self.db, seat)
            user = self.users[orm_user] if orm_user is not None else None
            if user is not None and user.spawners.get("") is not None and user.spawners[""].active:
                await self.stop_single_user(user, "")
        self.redirect(self.hub.base_url + "workshops")
