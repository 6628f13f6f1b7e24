"""The hub's own endpoints, in one table, added to JupyterHub's API when the hub is configured.

| route | handler | who |
|---|---|---|
| ``/hub/api/aifactory/job-port`` | the job reports JupyterLab's port | a starting server's own token |
| ``/hub/api/aifactory/estimate/USER[/SERVER]`` | the form's start estimate and cost | the ``servers`` scope on USER |
| ``/hub/api/aifactory/environments/USER`` | kernels, USER's environments, sizes (form, home) | ``servers`` on USER |
| ``/hub/api/aifactory/alternatives/USER[/SERVER]`` | queued: GET start-sooner choices, POST one | ``servers`` on USER |
| ``/hub/api/aifactory/usage/USER?days=N`` | core- and GPU-hours per account (home page) | ``servers`` on USER |
| ``/hub/api/aifactory/extend/USER[/SERVER]`` | POST: more walltime (hub/extend.py) | ``servers`` on USER |
| ``/hub/api/aifactory/audit`` | the audit log's last entries | admins (``admin:users``) |
| ``/hub/api/aifactory/workshops/NAME`` | a workshop made or ended (hub/workshop_pages.py) | admins |
| ``/hub/workshops`` | the instructor page: a workshop's seats and their servers | instructors, admins |
| ``/hub/share`` | share a running server with a colleague or a link, and revoke either (hub/sharing.py) | its user |
| ``/hub/api/aifactory/colleagues/NAME`` | POST: NAME can be shared with (added if they may sign in) | who shares |
| ``/hub/accept-share`` | JupyterHub's page; a share link lets one person in, then is used up | who signed in |
| ``/hub/api/aifactory/gallery/publish/USER[/SERVER]`` | publish a notebook of a running server | who may access it |
| ``/hub/api/aifactory/gallery/ID`` | withdraw an entry (DELETE) | its author, admins |
| ``/hub/gallery`` | the published notebooks, each with a Launch link (hub/gallery_pages.py) | every user |
| ``/hub/api/aifactory/jobs/USER`` | USER's Dask workers and notebook jobs (hub/operator.py) | ``servers`` on USER |
| ``/hub/api/aifactory/jobs/USER/workers/JOB`` | DELETE: cancel the Dask workers job JOB started | ``servers`` on USER |
| ``/hub/api/aifactory/jobs/USER/notebooks/JOB/cancel`` | POST: cancel a live notebook job | ``servers`` on USER |
| ``/hub/operator`` | every workbench job now; stop one with a reason its owner sees | admins |
| ``/hub/help`` | the user guide, which empty pages link to (hub/navigation.py) | anyone |
| ``/hub/spawn[/USER[/SERVER]]`` | the spawn form; sent while the server starts, leads there (spawn_page) | its user |
"""

from __future__ import annotations

from typing import Any

from aifactory_workbench.hub.audit import AuditHandler, AuditLog
from aifactory_workbench.hub.environments import ENVIRONMENTS_API_ROUTE, EnvironmentsHandler
from aifactory_workbench.hub.extend import EXTEND_API_ROUTE, ExtendHandler
from aifactory_workbench.hub.gallery_pages import (
    ENTRY_ROUTE,
    GALLERY_PAGE_ROUTE,
    PUBLISH_ROUTE,
    GalleryEntryHandler,
    GalleryPage,
    GalleryPublishHandler,
)
from aifactory_workbench.hub.navigation import HELP_PAGE_ROUTE, HelpPage
from aifactory_workbench.hub.operator import (
    JOBS_API_ROUTE,
    NOTEBOOK_CANCEL_API_ROUTE,
    OPERATOR_PAGE_ROUTE,
    WORKERS_API_ROUTE,
    JobsHandler,
    NotebookCancelHandler,
    OperatorPage,
    WorkersHandler,
)
from aifactory_workbench.hub.sharing import (
    ACCEPT_SHARE_ROUTE,
    COLLEAGUE_API_ROUTE,
    SHARE_PAGE_ROUTE,
    AcceptShareOnce,
    ColleagueHandler,
    SharePage,
)
from aifactory_workbench.hub.site import SiteConfig
from aifactory_workbench.hub.spawn_page import SPAWN_PAGE_ROUTES, SpawnPage
from aifactory_workbench.hub.workshop_pages import (
    WORKSHOP_API_ROUTE,
    WORKSHOP_PAGE_ROUTE,
    WorkshopAPIHandler,
    WorkshopPage,
)
from aifactory_workbench.job.launcher import CHANNEL_PATH
from aifactory_workbench.spawners.channel import JobPortHandler
from aifactory_workbench.spawners.estimate import EstimateHandler, QueuedAlternativesHandler, UsageHandler
from aifactory_workbench.spawners.gallery import Gallery
from aifactory_workbench.spawners.jupyterhub_compat import BATCHSPAWNER_ROUTE, install_handlers
from aifactory_workbench.spawners.seats import Registry

JOB_PORT_ROUTE = f"/api/{CHANNEL_PATH}"


def routes(audit: AuditLog, registry: Registry, gallery: Gallery, site: SiteConfig) -> list[tuple[Any, ...]]:
    publishing = {
        "gallery": gallery,
        "venv": site.singleuser.venv,
        "shared_storage": site.gallery.shared_storage,
        "audit": audit,
    }
    return [
        (JOB_PORT_ROUTE, JobPortHandler),
        (r"/api/aifactory/estimate/([^/]+)/?([^/]*)", EstimateHandler),
        (r"/api/aifactory/alternatives/([^/]+)/?([^/]*)", QueuedAlternativesHandler),
        (r"/api/aifactory/usage/([^/]+)", UsageHandler),
        (ENVIRONMENTS_API_ROUTE, EnvironmentsHandler, {"venv": site.singleuser.venv}),
        (WORKERS_API_ROUTE, WorkersHandler, {"audit": audit}),
        (NOTEBOOK_CANCEL_API_ROUTE, NotebookCancelHandler, {"audit": audit}),
        (EXTEND_API_ROUTE, ExtendHandler, {"audit": audit}),
        (JOBS_API_ROUTE, JobsHandler),
        (COLLEAGUE_API_ROUTE, ColleagueHandler),
        (r"/api/aifactory/audit", AuditHandler, {"audit": audit}),
        (WORKSHOP_API_ROUTE, WorkshopAPIHandler, {"registry": registry}),
        (PUBLISH_ROUTE, GalleryPublishHandler, publishing),
        (ENTRY_ROUTE, GalleryEntryHandler, {"gallery": gallery}),
    ]


def page_routes(
    audit: AuditLog, registry: Registry, gallery: Gallery, session_job_name: str, venv: str
) -> list[tuple[Any, ...]]:
    return [
        (WORKSHOP_PAGE_ROUTE, WorkshopPage, {"registry": registry}),
        (SHARE_PAGE_ROUTE, SharePage),
        (ACCEPT_SHARE_ROUTE, AcceptShareOnce, {"audit": audit}),
        (GALLERY_PAGE_ROUTE, GalleryPage, {"gallery": gallery, "venv": venv}),
        (HELP_PAGE_ROUTE, HelpPage),
        (OPERATOR_PAGE_ROUTE, OperatorPage, {"audit": audit, "session_job_name": session_job_name}),
        *((route, SpawnPage) for route in SPAWN_PAGE_ROUTES),
    ]


def install_routes(
    audit: AuditLog, registry: Registry, gallery: Gallery, site: SiteConfig, session_job_name: str
) -> None:
    """Put our routes into JupyterHub's API and pages (read when the hub starts), and take
    batchspawner's out (spawners/jupyterhub_compat.py; docs/reference/jupyterhub-internals.md says
    why not ``extra_handlers``)."""
    install_handlers(
        routes(audit, registry, gallery, site),
        page_routes(audit, registry, gallery, session_job_name, site.singleuser.venv),
        drop_api={BATCHSPAWNER_ROUTE},
    )
