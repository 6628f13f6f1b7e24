"""The links atop every hub page: where a person goes next, whatever page they are on.

Home, the gallery and the help page for everyone; Share when the site lets users share; the
workshops page for whoever leads one (and admins); the operator page and JupyterHub's user admin
for admins.  Links are absolute on the hub's own origin (``hub_url``), because hub pages are also
served on users' origins (a stopped server's address), where a relative link loops back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyterhub.handlers import BaseHandler

from aifactory_workbench.spawners.seats import Registry

HELP_PAGE_ROUTE = r"/help"


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str  # under the hub's URL, e.g. "home"


def nav_links(user: Any, *, registry: Registry | None, sharing: bool) -> list[NavLink]:
    """The links ``user`` (JupyterHub's User, or None before sign-in) is shown, in order."""
    if user is None:
        return [NavLink("Help", "help")]
    links = [NavLink("Home", "home"), NavLink("Gallery", "gallery")]
    if sharing:
        links.append(NavLink("Share", "share"))
    if user.admin or (registry is not None and registry.led_by(user.name)):
        links.append(NavLink("Workshops", "workshops"))
    if user.admin:
        links += [NavLink("Operator", "operator"), NavLink("Users", "admin")]
    return [*links, NavLink("Token", "token"), NavLink("Help", "help")]


def navigation(registry: Registry | None, sharing: bool) -> Callable[[Any], list[NavLink]]:
    """The ``nav`` template variable: JupyterHub calls it with the user of each page it renders."""
    return lambda user: nav_links(user, registry=registry, sharing=sharing)


class HelpPage(BaseHandler):
    """The user guide (hub/help.html), for anyone, signed in or not."""

    async def get(self) -> None:
        self.finish(await self.render_template("help.html"))
