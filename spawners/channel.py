"""The job→hub channel: a starting job tells the hub which port JupyterLab will use.

batchspawner's own handler sets *any* spawner attribute named in the posted JSON; this
one accepts a port in range and the SLURM job that reports it, from the token of a server
that is starting, and refuses everything else.  The job id matters when a waiting job was
replaced (the queued page's "start now instead"): both jobs carry the server's token, and a
report of the replaced one must not become the new one's port.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from jupyterhub.apihandlers import APIHandler
from tornado import web

PORT_RANGE = (1024, 65535)


class PortReportError(ValueError):
    """The posted body is not a port report."""


def parse_port_report(body: Any) -> tuple[int, str]:
    """The port and the reporting job's id from ``{"port": N, "job_id": "ID"}``; refuse any other
    shape or key. ``job_id`` is "" in a report without it (a launcher from before it was sent)."""
    if not isinstance(body, dict) or set(body) not in ({"port"}, {"port", "job_id"}):
        raise PortReportError('the body must be exactly {"port": N, "job_id": "ID"}')
    port = body["port"]
    lo, hi = PORT_RANGE
    if type(port) is not int or not lo <= port <= hi:
        raise PortReportError(f"port must be an integer from {lo} to {hi}")
    job_id = body.get("job_id", "")
    if "job_id" in body and not (isinstance(job_id, str) and job_id.isascii() and job_id.isdigit()):
        raise PortReportError("job_id must be SLURM's job id, in digits")
    return port, job_id


def owns(spawner: Any, token: str) -> bool:
    """Whether the token is this server's own (our spawner also knows it after a hub restart)."""
    if hasattr(spawner, "owns_token"):
        owned: bool = spawner.owns_token(token)  # WorkbenchSpawner's
        return owned
    return bool(spawner.api_token) and hmac.compare_digest(spawner.api_token, token)


class JobPortHandler(APIHandler):
    """POST {"port": N, "job_id": "ID"} with the server's own API token."""

    def check_xsrf_cookie(self) -> None:
        """Only token-authenticated jobs post here, never a browser."""

    async def post(self) -> None:
        user = self.current_user
        token = self.get_auth_token() or ""
        spawner = None
        if user is not None and token and hasattr(user, "spawners"):
            spawner = next((s for s in user.spawners.values() if owns(s, token)), None)
        if spawner is None:
            raise web.HTTPError(403, "this token belongs to no server")
        try:
            body = json.loads(self.request.body or b"null")
            port, job_id = parse_port_report(body)
        except (ValueError, PortReportError) as e:
            raise web.HTTPError(400, str(e)) from e
        if not getattr(spawner, "accept_reported_port", lambda _port, _job: False)(port, job_id):
            raise web.HTTPError(409, "this server is not waiting for a port from this job")
        self.set_status(200)
        self.finish({"port": port})
