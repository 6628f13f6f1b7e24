"""``GET /hub/api/aifactory/environments/USER``: the kernels USER's JupyterLab will offer, the
site's and USER's own environments with their sizes (spawners/environments.py), for the spawn
form and the home page, which ask it after they are shown.

The listing runs as USER through sudo (the hub cannot read homes), bounded in time and size, and
is reused for ``form.discovery_cache`` seconds per user on the hub's one services object."""

from __future__ import annotations

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from aifactory_workbench.spawners.environments import site_kernels

ENVIRONMENTS_API_ROUTE = r"/api/aifactory/environments/([^/]+)"


class EnvironmentsHandler(APIHandler):
    def initialize(self, venv: str) -> None:
        self.venv = venv

    @needs_scope("servers")
    async def get(self, user_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        listed = await user.spawner.discovery.environments(user.name)
        self.finish(listed | {"site_kernels": site_kernels(self.venv)})
