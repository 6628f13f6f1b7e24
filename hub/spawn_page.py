"""JupyterHub's spawn page (``/hub/spawn[/USER[/SERVER]]``), with one change: a form sent for a
server that is already starting leads to its progress page, and one sent for a server that
runs leads to the server, instead of JupyterHub's "alice is pending spawn" (a 400 error page);
and an admin whom SLURM charges to no project is led to the operator page.

That is what pressing Start in a second, older tab of the form does (issue 36, item 9): the
form was rendered while the server was stopped, and the server was started since, from
another tab or from the home page.  JupyterHub's own GET of the page already leads there; its
POST refuses.  Nothing is started and the form's values are not used: the server that runs or
starts is the one the person has.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.handlers.pages import SpawnHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.spawner import SpawnException
from jupyterhub.utils import url_escape_path, url_path_join
from tornado import web

#: JupyterHub's routes of the page, which ours replace (spawners/jupyterhub_compat.install_handlers).
SPAWN_PAGE_ROUTES = (r"/spawn", r"/spawn/([^/]+)", r"/spawn/([^/]+)/([^/]+)")


class SpawnPage(SpawnHandler):
    @web.authenticated
    async def get(self, user_name: str | None = None, server_name: str = "") -> None:
        """An admin of the hub whom SLURM charges to no project lands on the operator page: no
        form could start anything for them (issue 36, item 5); anyone else, JupyterHub's page."""
        if await self.admin_without_association(user_name, server_name):
            self.redirect(url_path_join(self.hub.base_url, "operator"))
            return
        await super().get(user_name, server_name)

    async def admin_without_association(self, user_name: str | None, server_name: str) -> bool:
        user = self.current_user
        if not getattr(user, "admin", False) or user_name not in (None, user.name) or server_name:
            return False
        spawner: Any = user.spawner
        if spawner.active or not hasattr(spawner, "choices"):
            return False
        try:
            await spawner.choices()
        except SpawnException as e:
            return getattr(e, "reason", "") == "no_association"
        return False

    @web.authenticated
    async def post(self, user_name: str | None = None, server_name: str = "", display_name: str = "") -> None:
        user_name = user_name or self.current_user.name
        server_name = server_name or ""
        elsewhere = await self.busy_server_url(user_name=user_name, server_name=server_name)
        if elsewhere:
            self.redirect(elsewhere)
            return
        await super().post(user_name, server_name, display_name)

    @needs_scope("servers")
    async def busy_server_url(self, user_name: str, server_name: str) -> str:
        """Where a server that already runs or starts is followed ("": it does neither, the form
        starts it).  The same scope as JupyterHub's POST: who may not start it learns nothing."""
        user = self.find_user(user_name)
        spawner: Any = user.spawners.get(server_name) if user is not None else None
        if spawner is None:
            return ""  # JupyterHub's POST says what is wrong (no such user, a server's name refused)
        if spawner.ready:
            running: str = self.get_next_url(user, default=user.server_url(server_name))
            return running
        if spawner.active:  # starting (or stopping): its progress page, as JupyterHub's GET does
            pending: str = url_path_join(
                self.hub.base_url, "spawn-pending", user.escaped_name, url_escape_path(server_name)
            )
            return pending
        return ""
