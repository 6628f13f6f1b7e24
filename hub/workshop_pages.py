"""The hub's side of workshops: instructors reach their seats' servers (a group and a role per
workshop, RBAC), see them on one page and stop them all; ``aifactory-workshop`` tells the
running hub of a new or ended workshop through the admin-only API.

* ``POST /hub/api/aifactory/workshops/NAME`` (admins): give the instructors their seats now.
* ``DELETE`` the same: stop the seats' servers, forget the seats, the group and the role.
* ``/hub/workshops`` (instructors, admins): each seat's server, its state, a link into it,
  and "stop all".
"""

from __future__ import annotations

import time
from typing import Any

from jupyterhub import orm, roles
from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from spawners.seats import ALL_SEATS_GROUP, Registry, Workshop

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
    def post(self, name: str) -> None:
        workshop = self.registry.workshops().get(name)
        if workshop is None:
            raise web.HTTPError(404, f"workshop {name} is not in the registry {self.registry.directory}")
        seats = [self.user_from_username(seat).orm_user for seat in workshop.seats]
        group_of(self.db, workshop.group).users = seats
        everyone = group_of(self.db, ALL_SEATS_GROUP)
        everyone.users = list({u.id: u for u in [*everyone.users, *seats]}.values())
        role = workshop.role()
        roles.create_role(self.db, {k: role[k] for k in ("name", "description", "scopes")})
        for instructor in workshop.instructors:
            roles.grant_role(self.db, self.user_from_username(instructor).orm_user, role["name"])
        self.db.commit()
        self.finish({"message": f"{len(seats)} seats in group {workshop.group}; instructors "
                                f"{', '.join(workshop.instructors)} reach their servers"})  # fmt: skip

    @needs_scope("admin:users")
    async def delete(self, name: str) -> None:
        group = orm.Group.find(self.db, f"workshop-{name}")
        stopped = 0
        for member in list(group.users) if group is not None else []:
            user = self.users[member]
            for spawner_name, spawner in list(user.spawners.items()):
                if spawner.active:
                    await self.stop_single_user(user, spawner_name)
                    stopped += 1
            self.users.delete(user)
        if group is not None:
            self.db.delete(group)
        if orm.Role.find(self.db, f"workshop-{name}-instructors") is not None:
            roles.delete_role(self.db, f"workshop-{name}-instructors")
        self.db.commit()
        self.finish({"message": f"workshop {name}: {stopped} servers stopped, its seats forgotten by the hub"})


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
            rows.append({
                "seat": seat,
                "state": "running" if running else ("starting" if spawner and spawner.active else "not started"),
                "job": getattr(spawner, "job_id", "") if spawner and spawner.active else "",
                "minutes": round((time.time() - since) / 60) if since else "",
                "url": user.url if running else "",
            })  # fmt: skip
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
