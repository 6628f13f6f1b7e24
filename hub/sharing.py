"""Sharing a running session, on the hub's side: the page where a user shares a server with a
named colleague or a share link, and revokes it.  The grants themselves are JupyterHub's
(its share API and ``access:servers!server=USER/NAME``); shares end with the server
(:meth:`spawners.spawner.WorkbenchSpawner.end_shares`).

* ``/hub/share``: the user's running servers, whom each is shared with, invite, link, revoke.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.handlers import BaseHandler
from tornado import web

SHARE_PAGE_ROUTE = r"/share"


def shared_with(spawner: Any) -> list[str]:
    """Whom a server is shared with: user names, and groups as ``group NAME``."""
    names = []
    for share in spawner.orm_spawner.shares:
        names.append(share.user.name if share.user is not None else f"group {share.group.name}")
    return sorted(names)


class SharePage(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        servers = [
            {"name": name, "title": f"Server {name}" if name else "Your JupyterLab", "shares": shared_with(spawner)}
            for name, spawner in sorted(user.spawners.items())
            if spawner.active
        ]
        self.finish(await self.render_template("share.html", servers=servers))
