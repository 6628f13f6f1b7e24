"""The audit log: logins, spawns (with the resources asked for), stops, job ends and admin
actions, one JSON line each, appended to a file only the hub can write; admins read it at
``/hub/api/aifactory/audit``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyterhub.apihandlers import APIHandler
from jupyterhub.log import log_request
from jupyterhub.scopes import needs_scope
from tornado import web

from job.launcher import CHANNEL_PATH

_CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


class AuditLog:
    """Appends events; never rewrites (O_APPEND), so nothing recorded is lost or changed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: str, **fields: Any) -> None:
        entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "event": event, **fields}
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)

    def tail(self, n: int) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()[-n:]
        return [json.loads(line) for line in lines if line.strip()]

    # -- hooks JupyterHub calls ------------------------------------------------------
    def on_login(self, authenticator: Any, handler: Any, auth_model: dict[str, Any]) -> dict[str, Any]:
        self.record("login", user=auth_model["name"], ip=handler.request.remote_ip)
        return auth_model

    def log_request(self, handler: Any) -> None:
        """JupyterHub's request log, plus an audit entry for changes made by admins."""
        log_request(handler)
        request = handler.request
        if request.method not in _CHANGES or "/api/" not in request.path:
            return
        # Admin users and admin services alike hold admin:users (set when the request was authenticated).
        if "admin:users" not in getattr(handler, "expanded_scopes", set()):
            return
        actor = handler.current_user
        if actor is not None and not request.path.endswith((CHANNEL_PATH, "/activity")):
            self.record("admin_action", actor=actor.name, actor_kind=getattr(actor, "kind", "user"),
                        method=request.method, path=request.path, status=handler.get_status())  # fmt: skip


class AuditHandler(APIHandler):
    """GET the last ``n`` (default 200) audit entries; admins only."""

    def initialize(self, audit: AuditLog) -> None:
        self.audit = audit

    @needs_scope("admin:users")
    def get(self) -> None:
        n = self.get_argument("n", "200")
        if not (n.isascii() and n.isdigit()):
            raise web.HTTPError(400, "n must be a whole number of entries")
        n = min(int(n), 10_000)
        self.finish({"entries": self.audit.tail(n)})
