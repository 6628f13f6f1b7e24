"""Sharing a running session, on the hub's side: the page where a user shares a server with a
named colleague or a share link, and revokes either.  The grants themselves are JupyterHub's
(its share API and ``access:servers!server=USER/NAME``); shares end with the server and with
its job, however the job ended (:meth:`spawners.spawner.WorkbenchSpawner.end_shares`).

* ``/hub/share``: the user's running servers, whom each is shared with, the share links not
  used yet; invite, make a link, revoke a person or a link.
* ``/hub/accept-share``: JupyterHub's page, except that a share link lets one person in and is
  then used up: revoking that person leaves no link they could use again.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.pages import AcceptShareHandler
from jupyterhub.orm import ShareCode
from tornado import web

SHARE_PAGE_ROUTE = r"/share"
ACCEPT_SHARE_ROUTE = r"/accept-share"


def shared_with(spawner: Any) -> list[str]:
    """Whom a server is shared with: user names, and groups as ``group NAME``."""
    names = []
    for share in spawner.orm_spawner.shares:
        names.append(share.user.name if share.user is not None else f"group {share.group.name}")
    return sorted(names)


def open_codes(spawner: Any) -> list[dict[str, str]]:
    """A server's share links not used yet: the id JupyterHub's API revokes them by, and when
    each was made and expires."""
    return [
        {"id": f"sc_{code.id}", "created": f"{code.created_at:%Y-%m-%d %H:%M}",
         "expires": f"{code.expires_at:%Y-%m-%d %H:%M}" if code.expires_at else "never"}
        for code in sorted(spawner.orm_spawner.share_codes, key=lambda c: c.id)
        if not code.expired
    ]  # fmt: skip


class SharePage(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        servers = [
            {"name": name, "title": f"Server {name}" if name else "Your JupyterLab", "shares": shared_with(spawner),
             "codes": open_codes(spawner)}
            for name, spawner in sorted(user.spawners.items())
            if spawner.active
        ]  # fmt: skip
        self.finish(await self.render_template("share.html", servers=servers))


#: What the second person to open a share link (or anyone, after it expired) is told.
USED_LINK = ("This share link has been used, or has expired: a link lets one person in, once. Ask the person "
             "who shared it for a new link, or to share their session with you by your user name.")  # fmt: skip


class AcceptShareOnce(AcceptShareHandler):
    """JupyterHub's accept page; a code, once exchanged, is deleted (and audited)."""

    def initialize(self, audit: Any) -> None:
        self.audit = audit

    @web.authenticated
    async def get(self) -> None:
        if ShareCode.find(self.db, code=self.get_argument("code")) is None:
            raise web.HTTPError(410, USED_LINK)  # JupyterHub's: a bare 404, "lots of moons"
        await super().get()

    @web.authenticated
    def post(self) -> None:
        share_code = ShareCode.find(self.db, code=self.get_argument("code"))
        super().post()  # refuses an unknown or expired code, or one of the user's own
        if share_code is not None:
            owner, server = share_code.owner.name, share_code.spawner.name
            self.db.delete(share_code)
            self.db.commit()
            if self.audit is not None:
                by = self.current_user.name
                self.audit.record("share_link_used", user=owner, server=server or "(default)", by=by)
