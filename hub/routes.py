"""The hub's own endpoints, in one table, added to JupyterHub's API when the hub is configured.

| route | handler | who |
|---|---|---|
| ``/hub/api/aifactory/job-port`` | the job reports JupyterLab's port | a starting server's own token |
| ``/hub/api/aifactory/estimate/USER[/SERVER]`` | the form's start estimate and cost | the ``servers`` scope on USER |
| ``/hub/api/aifactory/audit`` | the audit log's last entries | admins (``admin:users``) |
"""

from __future__ import annotations

from typing import Any

from jupyterhub import apihandlers

from hub.audit import AuditHandler, AuditLog
from job.launcher import CHANNEL_PATH
from spawners.channel import JobPortHandler
from spawners.estimate import EstimateHandler

JOB_PORT_ROUTE = f"/api/{CHANNEL_PATH}"
#: batchspawner registers this when imported: it lets a job set any spawner attribute.
BATCHSPAWNER_ROUTE = r"/api/batchspawner"


def routes(audit: AuditLog) -> list[tuple[Any, ...]]:
    return [
        (JOB_PORT_ROUTE, JobPortHandler),
        (r"/api/aifactory/estimate/([^/]+)/?([^/]*)", EstimateHandler),
        (r"/api/aifactory/audit", AuditHandler, {"audit": audit}),
    ]


def install_routes(audit: AuditLog) -> None:
    """Put our routes into JupyterHub's API (read when the hub starts), and take batchspawner's out.

    JupyterHub 6 deprecates ``extra_handlers``; its API handlers are this module-level list."""
    ours = routes(audit)
    replaced = {route[0] for route in ours} | {BATCHSPAWNER_ROUTE}
    handlers = apihandlers.default_handlers
    handlers[:] = [h for h in handlers if h[0] not in replaced] + ours
