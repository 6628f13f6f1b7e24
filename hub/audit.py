"""The audit log: logins, spawns (with the resources asked for), stops, job ends and admin
actions, one JSON line each, appended to a file only the hub can write; admins read it at
``/hub/api/aifactory/audit``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jupyterhub.apihandlers import APIHandler
from jupyterhub.log import log_request
from jupyterhub.scopes import needs_scope
from tornado import web

from aifactory_workbench.job.launcher import CHANNEL_PATH
from aifactory_workbench.spawners.jupyterhub_compat import authenticated_user

_CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
#: The user a hub path acts on: /hub/api/users/NAME/..., /hub/spawn/NAME/...
_TARGET = re.compile(r"/hub/(?:api/users|spawn|spawn-pending)/([^/?]+)")
MAX_ENTRIES = 10_000


def client_address(request: Any, proxy_certificate: Path | None = None) -> str:
    """Who connected, as the proxy saw it: the last X-Forwarded-For entry, which
    configurable-http-proxy appends, on the proxy's own connection only; never X-Real-Ip,
    which any client may send.  Any other connection is named by its own address (with
    internal_ssl a user's server certificate is also a client certificate the hub accepts, so
    code on a compute node may reach the hub past the proxy, with a header of its choosing)."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and from_the_proxy(request, proxy_certificate):
        return plain_address(forwarded.split(",")[-1].strip())
    address = getattr(request.connection.context, "address", None)
    return plain_address(address[0] if isinstance(address, tuple) else str(address))


def plain_address(address: str) -> str:
    """An IPv4 address as such, also where a dual-stack socket gave it as ::ffff:a.b.c.d."""
    return address.removeprefix("::ffff:") if "." in address else address


def from_the_proxy(request: Any, proxy_certificate: Path | None) -> bool:
    """The connection is the proxy's: over TLS (internal_ssl), it presented the proxy's own
    client certificate (``proxy_certificate``, PEM); in plain HTTP it comes from this machine
    (the proxy runs beside the hub: a compute node's address is another)."""
    sock = getattr(getattr(request.connection, "stream", None), "socket", None)
    if isinstance(sock, ssl.SSLSocket):
        try:
            proxy = ssl.PEM_cert_to_DER_cert(proxy_certificate.read_text()) if proxy_certificate else None
        except (OSError, ValueError):
            return False
        return proxy is not None and sock.getpeercert(binary_form=True) == proxy
    if sock is None:
        return False
    peer, local = sock.getpeername()[0], sock.getsockname()[0]
    return peer == local or ipaddress.ip_address(plain_address(peer)).is_loopback


def acts_on_others(path: str, actor: str) -> bool:
    """A change to another user's account or servers, or to the hub itself (groups, roles,
    users, the proxy): what an audit must show whoever made it, page or API alike."""
    if "/hub/api/" not in path and "/hub/spawn" not in path:
        return False
    if path.endswith((CHANNEL_PATH, "/activity")):
        return False  # a server's own reports
    target = _TARGET.search(path)
    if target:
        return unquote(target.group(1)) != actor
    return "/hub/api/" in path


class AuditLog:
    """Appends events; never rewrites (O_APPEND), so nothing recorded is lost or changed."""

    def __init__(self, path: Path, proxy_certificate: Path | None = None) -> None:
        self.path = path
        #: internal_ssl: the proxy's client certificate, the one connection whose
        #: X-Forwarded-For is believed over TLS (see client_address).
        self.proxy_certificate = proxy_certificate

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
        self.record("login", user=auth_model["name"], ip=client_address(handler.request, self.proxy_certificate))
        return auth_model

    def log_request(self, handler: Any) -> None:
        """JupyterHub's request log, plus an audit entry for every change made to someone else's
        account or servers, or to the hub (refused attempts too: the status says)."""
        log_request(handler)
        request = handler.request
        actor = authenticated_user(handler)  # who authenticated; None: nobody
        if request.method not in _CHANGES or actor is None or not acts_on_others(request.path, actor.name):
            return
        self.record(
            "admin_action",
            actor=actor.name,
            actor_kind=getattr(actor, "kind", "user"),
            ip=client_address(request, self.proxy_certificate),
            method=request.method,
            path=request.path,
            status=handler.get_status(),
        )


class AuditHandler(APIHandler):
    """GET the last ``n`` (default 200) audit entries; admins only."""

    def initialize(self, audit: AuditLog) -> None:
        self.audit = audit

    @needs_scope("admin:users")
    def get(self) -> None:
        n = self.get_argument("n", "200")
        if not (n.isascii() and n.isdigit() and 1 <= int(n) <= MAX_ENTRIES):
            raise web.HTTPError(400, f"n must be a whole number of entries from 1 to {MAX_ENTRIES}")
        n = int(n)
        self.finish({"entries": self.audit.tail(n)})
