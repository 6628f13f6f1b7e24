"""Sharing a running session, on the hub's side: the page where a user shares a server with a
named colleague or a share link, and revokes either.  The grants themselves are JupyterHub's
(its share API and ``access:servers!server=USER/NAME``); shares end with the server and with
its job, however the job ended (:meth:`aifactory_workbench.spawners.spawner.WorkbenchSpawner.end_shares`).

* ``/hub/share``: the user's running servers, whom each is shared with, the share links not
  used yet; invite, make a link, revoke a person or a link.
* ``/hub/accept-share``: JupyterHub's page, except that a share link lets one person in and is
  then used up: revoking that person leaves no link they could use again.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers import APIHandler
from jupyterhub.auth import PAMAuthenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.pages import AcceptShareHandler
from jupyterhub.orm import ShareCode
from tornado import web

from aifactory_workbench.root.accounts import may_sign_in
from aifactory_workbench.slurm.values import is_unix_user

SHARE_PAGE_ROUTE = r"/share"
ACCEPT_SHARE_ROUTE = r"/accept-share"
COLLEAGUE_API_ROUTE = r"/api/aifactory/colleagues/([^/]+)"


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
        {
            "id": f"sc_{code.id}",
            "created": f"{code.created_at:%Y-%m-%d %H:%M}",
            "expires": f"{code.expires_at:%Y-%m-%d %H:%M}" if code.expires_at else "never",
        }
        for code in sorted(spawner.orm_spawner.share_codes, key=lambda c: c.id)
        if not code.expired
    ]


def shared_with_me(user: Any) -> list[dict[str, Any]]:
    """The ``shared_with_me`` template variable: the servers others share with ``user`` (by name
    or through a group), each with its owner, and its address while it runs."""
    if user is None:
        return []
    from jupyterhub.user import User

    found = []
    for share in user.orm_user.all_shared_with_me:
        orm_spawner = share.spawner
        owner = User(orm_spawner.user, settings=user.settings)
        running = orm_spawner.server is not None
        found.append(
            {
                "owner": owner.name,
                "server": orm_spawner.name,
                "url": owner.server_url(orm_spawner.name) if running else "",
                "running": running,
            }
        )
    return sorted(found, key=lambda s: (s["owner"], s["server"]))


class ColleagueHandler(APIHandler):
    """POST: make sure a colleague can be shared with, before JupyterHub's share API is asked.

    JupyterHub shares only with users it knows, so a colleague who never signed in was "No such
    user".  One whom this hub's sign-in would let in (PAM: a Unix account in the allowed groups)
    is added now; anyone else is refused, in words.  Any user who may share may ask."""

    @web.authenticated
    async def post(self, name: str) -> None:
        if not any(scope.startswith("shares") for scope in self.expanded_scopes):
            raise web.HTTPError(403, "sharing is not enabled for you on this hub")
        refusal = f"No one named {name!r} can sign in here: check the user name (a Unix account name)."
        if not is_unix_user(name):
            raise web.HTTPError(404, refusal)
        if self.find_user(name) is not None:
            self.finish({"name": name, "new": False})
            return
        if not isinstance(self.authenticator, PAMAuthenticator):  # OpenID Connect: names come from the provider
            raise web.HTTPError(404, f"{name} has not signed in here yet: ask them to sign in once, then share again.")
        if not may_sign_in(name, self.authenticator.allowed_groups):
            raise web.HTTPError(404, refusal)
        self.user_from_username(name)
        self.set_status(201)
        self.finish({"name": name, "new": True})


class SharePage(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        servers = [
            {
                "name": name,
                "title": f"Server {name}" if name else "Your JupyterLab",
                "shares": shared_with(spawner),
                "codes": open_codes(spawner),
            }
            for name, spawner in sorted(user.spawners.items())
            if spawner.active
        ]
        self.finish(await self.render_template("share.html", servers=servers))


#: What the second person to open a share link (or anyone, after it expired) is told.
USED_LINK = (
    "This share link has been used, or has expired: a link lets one person in, once. Ask the person "
    "who shared it for a new link, or to share their session with you by your user name."
)


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
