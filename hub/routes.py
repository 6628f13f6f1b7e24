"""The hub's own endpoints, in one table, added to JupyterHub's API when the hub is configured.

| route | handler | who |
|---|---|---|
| ``/hub/api/aifactory/job-port`` | the job reports JupyterLab's port | a starting server's own token |
| ``/hub/api/aifactory/estimate/USER[/SERVER]`` | the form's start estimate and cost | the ``servers`` scope on USER |
| ``/hub/api/aifactory/audit`` | the audit log's last entries | admins (``admin:users``) |
| ``/hub/api/aifactory/workshops/NAME`` | a workshop made or ended (hub/workshop_pages.py) | admins |
| ``/hub/workshops`` | the instructor page: a workshop's seats and their servers | instructors, admins |
"""

from __future__ import annotations

from typing import Any

from jupyterhub import apihandlers, handlers

from hub.audit import AuditHandler, AuditLog
from hub.workshop_pages import WORKSHOP_API_ROUTE, WORKSHOP_PAGE_ROUTE, WorkshopAPIHandler, WorkshopPage
from job.launcher import CHANNEL_PATH
from spawners.channel import JobPortHandler
from spawners.estimate import EstimateHandler
from spawners.seats import Registry

JOB_PORT_ROUTE = f"/api/{CHANNEL_PATH}"
#: batchspawner registers this when imported: it lets a job set any spawner attribute.
BATCHSPAWNER_ROUTE = r"/api/batchspawner"


def routes(audit: AuditLog, registry: Registry) -> list[tuple[Any, ...]]:
    return [
        (JOB_PORT_ROUTE, JobPortHandler),
        (r"/api/aifactory/estimate/([^/]+)/?([^/]*)", EstimateHandler),
        (r"/api/aifactory/audit", AuditHandler, {"audit": audit}),
        (WORKSHOP_API_ROUTE, WorkshopAPIHandler, {"registry": registry}),
    ]


def page_routes(registry: Registry) -> list[tuple[Any, ...]]:
    return [(WORKSHOP_PAGE_ROUTE, WorkshopPage, {"registry": registry})]


def install_routes(audit: AuditLog, registry: Registry) -> None:
    """Put our routes into JupyterHub's API and pages (read when the hub starts), and take
    batchspawner's out.

    JupyterHub 6 deprecates ``extra_handlers``; its handlers are these module-level lists."""
    for table, ours, extra in (
        (apihandlers.default_handlers, routes(audit, registry), {BATCHSPAWNER_ROUTE}),
        (handlers.default_handlers, page_routes(registry), set()),
    ):
        replaced = {route[0] for route in ours} | extra
        table[:] = [h for h in table if h[0] not in replaced] + ours
