"""A Dask scheduler preload (``distributed.scheduler.preload``, installed with the site's Dask
config): a scheduler started in a JupyterLab job (``SLURMCluster()``, ``start_cluster()``,
a ``LocalCluster``) notes its dashboard's link in the job's private folder, so that
JupyterLab's Dask panel finds it by itself (``aifactory.session`` reports it).

Outside a JupyterLab job (``AIFACTORY_DASHBOARDS`` unset) it does nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

FOLDER_ENV = "AIFACTORY_DASHBOARDS"


def _note_path(scheduler: Any) -> Path | None:
    folder = os.environ.get(FOLDER_ENV, "")
    return Path(folder) / f"{os.getpid()}-{id(scheduler)}.json" if folder else None


def dask_setup(scheduler: Any) -> None:
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
