"""The route by which a user opens, through her own JupyterLab, the dashboards of the Dask
schedulers her JupyterLab job started (issue 34, hole 3): ``{base_url}aifactory/dask/NAME/PATH``
forwards HTTP and websockets (the dashboard's Bokeh plots) to the Unix socket that the
scheduler's note ``NAME`` (``aifactory_workbench.lab.dashboard``) names, in the job's private
folder. The socket answers only this user's processes; this route only those whom her server
lets in (the hub's OAuth, as for ``/proxy/PORT``). jupyter-server-proxy does the forwarding.

``aifactory_workbench.lab.session`` adds the route when JupyterLab starts.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import LocalProxyHandler
from tornado import web

from aifactory_workbench.lab.dashboard import FOLDER_ENV, dashboard_note

#: Where the route lives under the server's base URL (its first group: the dashboard's name).
ROUTE = r"aifactory/dask/([^/]+)(/.*|)"
#: A port for the request's URL only: the connection goes to the socket.
_PORT = 80


class DashboardProxyHandler(LocalProxyHandler):
    """``aifactory/dask/NAME/PATH`` → ``PATH`` on the socket of dashboard NAME (404: no such
    dashboard in this job; 403 as jupyter-server-proxy answers: not signed in)."""

    def initialize(self, folder: str) -> None:
        self.folder = folder

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        await super().prepare(*args, **kwargs)  # sign-in first: a stranger learns nothing
        name = self.path_args[0] if self.path_args else ""
        note = dashboard_note(self.folder, name)
        if note is None:
            raise web.HTTPError(404, f"no Dask dashboard {name!r} in this session")
        self.unix_socket = note["socket"]
        self.proxy_base = url_path_join("aifactory", "dask", name)

    def proxy(self, name: str, proxied_path: str) -> Any:
        return super().proxy(_PORT, proxied_path)

    async def open(self, name: str, proxied_path: str) -> None:
        return await self.proxy_open("localhost", _PORT, proxied_path)


def dashboard_link(base_url: str, name: str) -> str:
    """Where the owner opens dashboard ``name`` (the Dask panel's address)."""
    return url_path_join(base_url, "aifactory", "dask", name, "status")


def add_dashboard_route(web_app: Any) -> str:
    """Add the route to the server's web application; return its pattern."""
    pattern = url_path_join(web_app.settings["base_url"], ROUTE)
    folder = os.environ.get(FOLDER_ENV, "")
    web_app.add_handlers(".*$", [(pattern, DashboardProxyHandler, {"folder": folder, "absolute_url": False})])
    return pattern
