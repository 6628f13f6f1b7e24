"""The one place where the hub side (``hub/`` and ``spawners/``) reaches into JupyterHub's and
batchspawner's internals.

Checked against JupyterHub 6.1.1 and batchspawner 1.3.0 (tornado 6.6.1).
``tests/unit/test_compat.py`` checks each name below in the installed versions and fails with
this module's name when an upgrade changes it; it also fails when one of these names is used
anywhere else in hub/, spawners/, lab/, job/ or slurm/.  The job's side (jupyter_server,
inside the JupyterLab job) has its own module, ``job/server_compat.py``: the import contracts
(pyproject's ``[tool.importlinter]``) let ``job`` import nothing of ours, and this module sits in
``spawners`` (the lowest layer that both ``hub`` and ``spawners`` may import).

What is relied on, and why:

* ``BaseHandler._jupyterhub_user`` (:func:`authenticated_user`): who the request authenticated
  as (a user or a service), or None.  ``get_current_user()`` sets it once per request; the
  public ``current_user`` raises before that, and our request log (audit, culler's note) runs
  for every request, also for those that never authenticated.
* ``Spawner._check_pending`` (:func:`check_pending`): True while the hub, at its start, checks
  a server it found in the database.  The public ``pending`` says ``"check"`` only when no
  spawn or stop is pending as well, which is not the same question.
* ``JupyterHub.instance()`` (:func:`running_hub`): the running hub application (a traitlets
  singleton), for its ``proxy``, ``db`` and ``users``, from code that runs outside a request
  (a spawner resumed after a restart, the workshop task).
* ``JupyterHub._start_future`` (:func:`hub_started`): set once the hub serves and has checked
  the servers it found in the database.
* ``jupyterhub.apihandlers.default_handlers`` and ``jupyterhub.handlers.default_handlers``
  (:func:`install_handlers`): the module-level route tables ``JupyterHub.init_handlers`` reads
  when the hub starts.  We add our pages and API there, replace JupyterHub's ``/accept-share``
  page, and take out the route batchspawner appends to the API table when it is imported
  (:data:`BATCHSPAWNER_ROUTE`).  ``JupyterHub.extra_handlers``, deprecated since JupyterHub 3.1,
  cannot do the latter two (its routes come after the default ones, and tornado takes the
  first match); docs/reference/jupyterhub-internals.md says why and what comes next.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: The versions this module was checked against (tests/unit/test_compat.py reads them).
CHECKED_VERSIONS = {"jupyterhub": "6.1.1", "batchspawner": "1.3.0"}

#: The private names, as source text; no other file of ours may contain them.
PRIVATE_NAMES = (
    "_jupyterhub_user",
    "_check_pending",
    "_start_future",
    "JupyterHub.instance",
    "default_handlers",
)

#: batchspawner registers this API route when imported: it lets a job set any spawner attribute.
BATCHSPAWNER_ROUTE = r"/api/batchspawner"


def authenticated_user(handler: Any) -> Any | None:
    """The user or service a JupyterHub request authenticated as; None: nobody (or not yet)."""
    return getattr(handler, "_jupyterhub_user", None)


def check_pending(spawner: Any) -> bool:
    """Is the hub, at its start, still checking this server (found running in the database)?"""
    return bool(spawner._check_pending)


def running_hub() -> Any:
    """The running JupyterHub application."""
    from jupyterhub.app import JupyterHub

    return JupyterHub.instance()


async def hub_started(hub: Any, pause: float = 1.0) -> None:
    """Return once ``hub`` serves and has checked the servers it found in its database."""
    started = getattr(hub, "_start_future", None)
    while started is None or not started.done():
        await asyncio.sleep(pause)
        started = getattr(hub, "_start_future", None)


async def add_route_for(spawner: Any) -> None:
    """Put the spawner's server into the running hub's proxy."""
    await running_hub().proxy.add_user(spawner.user, spawner.name)


async def stop_through_hub(spawner: Any) -> None:
    """Stop the spawner's server as JupyterHub's own stop does: its route out of the proxy, then
    ``User.stop`` (which asks ``poll()``, calls ``stop()`` if needed and forgets the server)."""
    await running_hub().proxy.delete_user(spawner.user, spawner.name)
    await spawner.user.stop(spawner.name)


def install_handlers(api: list[tuple[Any, ...]], pages: list[tuple[Any, ...]], drop_api: set[str]) -> None:
    """Add ``api`` (under /hub/api) and ``pages`` (under /hub) to JupyterHub's route tables, each
    replacing a route of the same path, and take the ``drop_api`` routes out.  Idempotent; call it
    before the hub's ``init_handlers`` (while its configuration loads)."""
    from jupyterhub import apihandlers, handlers

    for table, ours, extra in (
        (apihandlers.default_handlers, api, drop_api),
        (handlers.default_handlers, pages, set()),
    ):
        replaced = {route[0] for route in ours} | extra
        table[:] = [h for h in table if h[0] not in replaced] + ours
