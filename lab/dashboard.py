"""A Dask scheduler and worker preload (``distributed.scheduler.preload`` and
``distributed.worker.preload``, installed with the site's Dask config): every dashboard a
scheduler or worker of the site's Python serves answers on a Unix socket in a fresh folder only
its owner may enter, never on a TCP port (issue 34, hole 3).

A TCP port answers every process of its node: the node's address every tenant, and 127.0.0.1
every job on the node and every user of the login node. So, when the scheduler or worker
starts, its HTTP server (dashboard, ``/json``, ``/metrics``, ``/health``) stops listening on
its TCP port, drops the connections it had, and listens on ``dashboard.sock`` in a folder made
by ``mkdtemp`` (mode 700) in the process's ``TMPDIR`` (a job's private folder), or in /tmp
when that path would be too long for a socket. The folder goes when the server closes.

* A scheduler started in a JupyterLab job (``AIFACTORY_DASHBOARDS`` set) notes its dashboard
  there: JupyterLab's Dask panel finds it by itself (``aifactory_workbench.lab.session``), and its
  owner opens it through her own server at ``/user/NAME/aifactory/dask/NAME/status``
  (``aifactory_workbench.lab.dashboard_proxy``); the scheduler's dashboard "port" is that NAME,
  so ``client.dashboard_link`` is that address.
* Elsewhere (the login node, a batch job) the scheduler logs its socket; its owner opens it with
  ``ssh -L 8787:SOCKET host`` or ``curl --unix-socket SOCKET``.
* A worker's socket is in its job's private folder on its node; the worker advertises no
  dashboard port (the scheduler's dashboard shows its workers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

FOLDER_ENV = "AIFACTORY_DASHBOARDS"
SOCKET = "dashboard.sock"
#: A dashboard's name: its process id, then a random part (``dashboard_note`` checks it).
NAME = re.compile(r"[0-9]+-[0-9a-f]{8}")
#: The longest path a Unix socket may have (108 bytes with its final NUL).
MAX_SOCKET_PATH = 107

logger = logging.getLogger(__name__)


def private_socket_path() -> Path:
    """A new socket path in a fresh folder only this user enters (``mkdtemp``: mode 700, a name
    no one else chose), in ``TMPDIR`` unless the path would be too long there."""
    for base in (tempfile.gettempdir(), "/tmp"):
        if len(os.path.join(base, "aifw-dask-dashboard-XXXXXXXX", SOCKET)) <= MAX_SOCKET_PATH:
            return Path(tempfile.mkdtemp(prefix="aifw-dask-dashboard-", dir=base)) / SOCKET
    raise OSError("no folder with a path short enough for a Unix socket")


async def serve_on_unix_socket(server: Any, path: Path, port: Any) -> Any:
    """Move ``server``'s HTTP server (a Scheduler's or Worker's) from its TCP port to a Unix
    socket at ``path``; the connections it accepted meanwhile are closed. ``port`` is what the
    server then advertises as its dashboard's port. Returns the new HTTP server, whose
    ``socket_path`` says where it listens."""
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_unix_socket

    old = server.http_server
    old.stop()
    try:
        await asyncio.wait_for(old.close_all_connections(), 10)
    except TimeoutError:
        logger.warning("aifactory_workbench.lab.dashboard: a dashboard connection did not close in 10 s")
    # Plain HTTP: only processes of this user reach the socket (a dashboard TLS certificate
    # configured for a TCP port has no use here).
    moved = HTTPServer(server.http_application)
    moved.add_sockets([bind_unix_socket(str(path), mode=0o600)])
    moved.socket_path, moved.address, moved.port = str(path), "", port
    server.http_server = moved
    server.services["dashboard"] = moved
    return moved


def _is_scheduler(server: Any) -> bool:
    from distributed import Scheduler

    return isinstance(server, Scheduler)


def _note_path(name: str) -> Path | None:
    folder = os.environ.get(FOLDER_ENV, "")
    return Path(folder) / f"{name}.json" if folder else None


def _write_note(path: Path, note: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(note))
    tmp.replace(path)


async def dask_setup(server: Any) -> None:
    """Move the server's HTTP server to a private Unix socket; a scheduler in a JupyterLab job
    notes it for the Dask panel, one elsewhere logs where it is."""
    if getattr(server, "http_server", None) is None:
        return
    path = private_socket_path()
    if not _is_scheduler(server):
        await serve_on_unix_socket(server, path, None)
        logger.info("dashboard on the Unix socket %s (only its owner opens it)", path)
        return
    name = f"{os.getpid()}-{secrets.token_hex(4)}"
    await serve_on_unix_socket(server, path, name)
    server._aifw_dashboard_name = name
    note = _note_path(name)
    if note is None:
        logger.info(
            "dashboard on the Unix socket %s, for its owner only: ssh -L 8787:%s %s, then http://localhost:8787/status",
            path,
            path,
            socket.gethostname(),
        )
        return
    _write_note(note, {"name": name, "socket": str(path), "address": server.address, "started": time.time()})


def dask_teardown(server: Any) -> None:
    """Remove the note and the socket's folder (the HTTP server itself stops with its server)."""
    name = getattr(server, "_aifw_dashboard_name", None)
    note = _note_path(name) if name else None
    if note is not None:
        note.unlink(missing_ok=True)
    path = getattr(getattr(server, "http_server", None), "socket_path", None)
    if path:
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def running_dashboards(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The notes of schedulers still running in this job, newest first (a note whose process
    has gone, killed before its teardown, is left out; so is one without a name)."""
    found = []
    for path in Path(folder).glob("*.json"):
        try:
            note = json.loads(path.read_text())
            os.kill(int(path.name.split("-", 1)[0]), 0)
        except (OSError, ValueError):
            continue
        if isinstance(note, dict) and NAME.fullmatch(str(note.get("name", ""))) and note.get("socket"):
            found.append(note)
    return sorted(found, key=lambda n: n.get("started", 0), reverse=True)


def dashboard_note(folder: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The note of dashboard ``name`` in ``folder`` (None: no such dashboard, or not a name)."""
    if not folder or not NAME.fullmatch(name):
        return None
    try:
        note = json.loads((Path(folder) / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) and note.get("name") == name and note.get("socket") else None
