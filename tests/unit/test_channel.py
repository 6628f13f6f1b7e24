"""The job→hub channel accepts a port and nothing else."""

import jupyterhub.handlers
import pytest
from jupyterhub import apihandlers

from aifactory_workbench.hub.audit import AuditHandler, AuditLog
from aifactory_workbench.hub.routes import JOB_PORT_ROUTE, install_routes
from aifactory_workbench.hub.workshop_pages import WORKSHOP_PAGE_ROUTE
from aifactory_workbench.spawners.channel import JobPortHandler, PortReportError, parse_port_report
from aifactory_workbench.spawners.gallery import Gallery
from aifactory_workbench.spawners.seats import Registry
from tests.unit.defaults import DEFAULTS


def test_a_port_in_range_is_accepted_with_the_job_that_reports_it():
    assert parse_port_report({"port": 45161, "job_id": "2740"}) == (45161, "2740")
    assert parse_port_report({"port": 45161}) == (45161, "")  # a launcher from before the job id


@pytest.mark.parametrize(
    "body",
    [
        {"port": 80},
        {"port": 70000},
        {"port": "45161"},
        {"port": True},
        {"port": 4.5e4},
        {"port": 45161, "batch_submit_cmd": "touch /tmp/owned"},
        {"port": 45161, "job_id": 2740},
        {"port": 45161, "job_id": "27 40"},
        {"port": 45161, "job_id": "²"},
        {"port": 45161, "job_id": "2740", "extra": 1},
        {"batch_submit_cmd": "touch /tmp/owned"},
        {},
        [45161],
        None,
        "45161",
    ],
)
def test_anything_else_is_refused(body):
    with pytest.raises(PortReportError):
        parse_port_report(body)


def test_batchspawner_handler_is_replaced_by_our_route_table(tmp_path):
    import batchspawner  # noqa: F401 - importing it registers its handler

    assert any(path == r"/api/batchspawner" for path, *_ in apihandlers.default_handlers)
    audit, registry, gallery = AuditLog(tmp_path / "audit.log"), Registry(tmp_path / "ws"), Gallery(tmp_path / "g")
    install_routes(audit, registry, gallery, DEFAULTS, session_job_name="aifw-jupyterlab")
    install_routes(audit, registry, gallery, DEFAULTS, session_job_name="aifw-jupyterlab")  # idempotent
    paths = [path for path, *_ in apihandlers.default_handlers]
    pages = [path for path, *_ in jupyterhub.handlers.default_handlers]
    assert pages.count(WORKSHOP_PAGE_ROUTE) == 1
    assert r"/api/batchspawner" not in paths
    assert paths.count(JOB_PORT_ROUTE) == 1 and JOB_PORT_ROUTE == "/api/aifactory/job-port"
    handlers = {h[0]: h[1:] for h in apihandlers.default_handlers}
    assert handlers[JOB_PORT_ROUTE] == (JobPortHandler,)
    assert handlers[r"/api/aifactory/audit"] == (AuditHandler, {"audit": audit})
