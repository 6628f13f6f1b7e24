"""A Dask scheduler preload (``distributed.scheduler.preload``, installed with the site's Dask
config): a scheduler started in a JupyterLab job (``SLURMCluster()``, ``start_cluster()``,
a ``LocalCluster``) notes its dashboard's link in the job's private folder, so that
JupyterLab's Dask panel finds it by itself (``aifactory_workbench.lab.session`` reports it).

Any scheduler's dashboard answers on the node's loopback only: other tenants reach the
node's address. The site's config asks for 127.0.0.1 already; a dashboard on all interfaces
(a ``LocalCluster``'s ``:8787``, a user's own ``dashboard_address``) is moved there when the
scheduler starts. Its owner opens it through her own server (``/user/NAME/proxy/PORT/``).

Outside a JupyterLab job (``AIFACTORY_DASHBOARDS`` unset) no note is written.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from pathlib import Path
from typing import Any

FOLDER_ENV = "AIFACTORY_DASHBOARDS"


def _note_path(scheduler: Any) -> Path | None:
    folder = os.environ.get(FOLDER_ENV, "")
    return Path(folder) / f"{os.getpid()}-{id(scheduler)}.json" if folder else None


def _on_loopback(scheduler: Any) -> Any:
    """The scheduler's HTTP server, moved to 127.0.0.1 (same port when free) if it listens elsewhere."""
    from distributed.comm import get_tcp_server_addresses
    from tornado.httpserver import HTTPServer

    server = scheduler.http_server
    if all(ipaddress.ip_address(a[0]).is_loopback for a in get_tcp_server_addresses(server)):
        return server
    port = server.port
    server.stop()
    moved = HTTPServer(scheduler.http_application, ssl_options=server.ssl_options)
    try:
        moved.listen(port, "127.0.0.1")
    except OSError:  # someone took the port in between: any other port of loopback
        moved.listen(0, "127.0.0.1")
    moved.address, moved.port = get_tcp_server_addresses(moved)[0][:2]
    scheduler.http_server = moved
    if "dashboard" in scheduler.services:
        scheduler.services["dashboard"] = moved
    return moved


def dask_setup(scheduler: Any) -> None:
    if getattr(scheduler, "http_server", None) is not None:
        _on_loopback(scheduler)
    path = _note_path(scheduler)
    dashboard = getattr(scheduler, "services", {}).get("dashboard")
    if path is None or dashboard is None:
        return
    from distributed.utils import format_dashboard_link

    link = format_dashboard_link("localhost", dashboard.port)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"link": link, "address": scheduler.address, "started": time.time()}))
    tmp.replace(path)


def dask_teardown(scheduler: Any) -> None:
    path = _note_path(scheduler)
    if path is not None:
        path.unlink(missing_ok=True)


def running_dashboards(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The notes of schedulers still running in this job, newest first (a note whose process
    has gone, killed before its teardown, is left out)."""
    found = []
    for path in Path(folder).glob("*.json"):
        try:
            note = json.loads(path.read_text())
            os.kill(int(path.name.split("-", 1)[0]), 0)
        except (OSError, ValueError):
            continue
        found.append(note)
    return sorted(found, key=lambda n: n.get("started", 0), reverse=True)
