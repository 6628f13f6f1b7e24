"""Idle culling: jupyterhub-idle-culler as a hub service, one for every server and, with a
shorter timeout, one that sees only workshop seats (its role's scopes name their group).

What counts as use is the server's own last activity, which the user's JupyterLab reports to
the hub (``aifactory_workbench.lab.activity`` adds a busy kernel and running Dask worker jobs to it), so a
long analysis is never stopped for lack of clicks.  A stopped user's next page says why.
"""

from __future__ import annotations

import re
import sys
from typing import Any
from urllib.parse import unquote

from traitlets.config import Config

from aifactory_workbench.hub.site import SiteConfig
from aifactory_workbench.spawners.jupyterhub_compat import authenticated_user
from aifactory_workbench.spawners.seats import ALL_SEATS_GROUP

CULLERS = {"idle-culler": "", "idle-culler-seats": f"!group={ALL_SEATS_GROUP}"}
_SERVER_STOP = re.compile(r"/hub/api/users/([^/]+)/server/?$")


def culler_timeouts(site: SiteConfig) -> dict[str, float]:
    """Each culler service that runs, with its timeout in seconds."""
    culler = site.culler
    found = {}
    if culler.idle_timeout:
        found["idle-culler"] = culler.idle_timeout
    if culler.seat_idle_timeout and (not culler.idle_timeout or culler.seat_idle_timeout < culler.idle_timeout):
        found["idle-culler-seats"] = culler.seat_idle_timeout
    return found


def activity_interval(site: SiteConfig) -> int:
    """Seconds between a server's activity reports: often enough for the shortest timeout."""
    timeouts = culler_timeouts(site).values()
    return int(max(5, min([300, *(t / 4 for t in timeouts)])))


def update_culler(c: Config, site: SiteConfig) -> None:
    """The culler services and their roles: list users, read activity, stop servers (of seats only,
    for the seats' culler), nothing else."""
    timeouts = culler_timeouts(site)
    if timeouts:  # servers report their use often enough for the shortest timeout
        env = dict(c.WorkbenchSpawner.environment) if "environment" in c.WorkbenchSpawner else {}
        c.WorkbenchSpawner.environment = {**env, "JUPYTERHUB_ACTIVITY_INTERVAL": str(activity_interval(site))}
    for name, timeout in timeouts.items():
        scope_filter = CULLERS[name]
        command = [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={int(timeout)}",
            f"--cull-every={int(site.culler.every)}",
            "--concurrency=2",
        ]
        append(c, "services", {"name": name, "command": command})
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        append(c, "load_roles", {"name": name, "scopes": [s + scope_filter for s in scopes], "services": [name]})


def append(c: Config, key: str, item: Any) -> None:
    """Add to a list setting of JupyterHub (services, load_roles) that several concerns fill."""
    current = list(c.JupyterHub[key]) if key in c.JupyterHub else []
    c.JupyterHub[key] = [*current, item]


def in_words(seconds: float) -> str:
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def note_culled(handler: Any, site: SiteConfig) -> None:
    """After a culler stopped a server: the user's next page says why (called for each request)."""
    actor = authenticated_user(handler)
    request = handler.request
    stop = _SERVER_STOP.search(request.path)
    name = getattr(actor, "name", "")
    if request.method != "DELETE" or stop is None or handler.get_status() >= 400:
        return
    if name not in CULLERS or getattr(actor, "kind", "") != "service":
        return
    user = handler.find_user(unquote(stop.group(1)))
    if user is None:
        return
    spawner = user.spawners[""]  # the stopped spawner was let go: this one is read from the database
    if not hasattr(spawner, "last_end"):
        return
    spawner.last_end = (
        f"Your JupyterLab was stopped after {in_words(culler_timeouts(site)[name])} without use "
        "(no open page, busy kernel or Dask workers); its job was cancelled."
    )
    spawner.save_state()
