"""The running hub's REST API, as root's commands on the hub's machine call it (``aifactory-workshop``
tells the hub of a workshop): one client, whose address and TLS come from the site's hub
settings (with internal TLS, the hub's own certificate, whose place :mod:`.tls` knows)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any

from jupyterhub.utils import make_ssl_context

from aifactory_workbench.hub.site import HubSettings, SiteConfigError, read_secret
from aifactory_workbench.hub.tls import internal_certificate, internal_key, internal_trust


class HubClientError(ValueError):
    """The client cannot be set up (its token file); the message names the site key."""


def read_token_file(path: Path) -> str:
    """The admin service's token (the site file's one reader of secrets, hub/site.py)."""
    try:
        return read_secret(str(path), "hub.admin_services")
    except SiteConfigError as e:
        raise HubClientError(str(e)) from None


class HubClient:
    """Calls the hub's API at its own address (``hub.hub_ip``:``hub.hub_port``), as the site's
    first admin service (``hub.admin_services``)."""

    def __init__(self, hub: HubSettings) -> None:
        self.hub = hub

    @property
    def configured(self) -> bool:
        """Whether the site gives the hub an admin service to call it as."""
        return bool(self.hub.admin_services)

    def ssl_context(self) -> ssl.SSLContext | None:
        """With internal TLS, the hub's API wants a certificate its CA signed: the hub's own."""
        if not self.hub.internal_ssl:
            return None
        certs = self.hub.internal_certs_dir
        context: ssl.SSLContext = make_ssl_context(
            str(internal_key(certs, "hub-internal")),
            str(internal_certificate(certs, "hub-internal")),
            cafile=str(internal_trust(certs, "hub-ca")),
        )
        return context

    def request(self, method: str, path: str, timeout: float = 120) -> dict[str, Any]:
        """``method`` on ``/hub/api/PATH``; the answer's JSON. Raises OSError when the hub does not answer."""
        token = read_token_file(Path(self.hub.admin_services[0]["token_file"]))
        scheme = "https" if self.hub.internal_ssl else "http"
        url = f"{scheme}://{self.hub.hub_ip}:{self.hub.hub_port}/hub/api/{path.lstrip('/')}"
        request = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context()) as reply:
            answer: dict[str, Any] = json.loads(reply.read() or b"{}")
        return answer
