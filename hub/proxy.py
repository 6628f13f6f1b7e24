"""configurable-http-proxy on its own, so that a hub restart keeps every open connection.

JupyterHub starts the proxy as its child by default, and a restart of the hub (an upgrade, a
change of the site file) then drops every open websocket: kernels, terminals, shared editing.
With ``hub.proxy_token_file`` set, the proxy is a service of its own (the unit
``aifactory-proxy``, ``aifactory-site proxy`` in its ``ExecStart``): the hub reaches its API with
the token in that file and neither starts nor stops it (``configure.update_proxy``).

The proxy's command line is the one JupyterHub's ``ConfigurableHTTPProxy.start`` builds
(jupyterhub/proxy.py, 5.x and 6.x: ``start`` and ``_get_ssl_options``), from the site file
alone: :func:`proxy_argv`. With ``hub.internal_ssl``, the proxy's certificates are the hub's
(``hub.internal_certs_dir``); on a first start, before any hub made them, the proxy makes them
as the hub would, with JupyterHub's own code (:func:`internal_certs`), and the hub then uses them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from traitlets.config import Config

from aifactory_workbench.hub.configure import PROXY_TOKEN_KEY, internal_alt_names, subdomain_host
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, read_secret

#: The proxy's log level: JupyterHub's default for ConfigurableHTTPProxy.log_level.
LOG_LEVEL = "info"
#: The umask the proxy runs under: JupyterHub's ConfigurableHTTPProxy.command_umask.
UMASK = 0o007
#: The environment variable configurable-http-proxy reads its API token from.
TOKEN_VARIABLE = "CONFIGPROXY_AUTH_TOKEN"


@dataclass(frozen=True)
class ProxyCerts:
    """The proxy's internal TLS files: its API's (the hub calls it) and its client's (it calls
    the hub and the servers), each key, certificate and the CA bundle it trusts."""

    api_key: str
    api_cert: str
    api_ca: str
    client_key: str
    client_cert: str
    client_ca: str


def error_target(site: SiteConfig) -> str:
    """The hub's error page, at the address the proxy reaches the hub at (JupyterHub's hub.url)."""
    hub = site.hub
    scheme = "https" if hub.internal_ssl else "http"
    return f"{scheme}://{hub.connect_ip}:{hub.hub_port}/hub/error"


def proxy_argv(site: SiteConfig, certs: ProxyCerts | None) -> list[str]:
    """The proxy's command line, as JupyterHub's ConfigurableHTTPProxy.start builds it.

    ``certs`` is required with hub.internal_ssl and ignored without it."""
    hub = site.hub
    argv = [hub.proxy_command, "--ip", hub.ip, "--port", str(hub.port)]
    argv += ["--api-ip", "127.0.0.1", "--api-port", str(hub.proxy_api_port)]
    argv += ["--error-target", error_target(site), "--log-level", LOG_LEVEL]
    if hub.user_subdomains:
        argv.append("--host-routing")
    if hub.ssl_key:
        argv += ["--ssl-key", hub.ssl_key]
    if hub.ssl_cert:
        argv += ["--ssl-cert", hub.ssl_cert]
    if hub.internal_ssl:
        if certs is None:
            raise ValueError("hub.internal_ssl needs the proxy's certificates")
        argv += ["--api-ssl-key", certs.api_key, "--api-ssl-cert", certs.api_cert, "--api-ssl-ca", certs.api_ca]
        argv += ["--api-ssl-request-cert", "--api-ssl-reject-unauthorized"]
        argv += ["--client-ssl-key", certs.client_key, "--client-ssl-cert", certs.client_cert]
        argv += ["--client-ssl-ca", certs.client_ca, "--client-ssl-request-cert", "--client-ssl-reject-unauthorized"]
    return argv


def internal_certs(site: SiteConfig) -> ProxyCerts:
    """The proxy's internal TLS files in hub.internal_certs_dir, made there first if no hub has
    made them yet, by JupyterHub's own code with the hub's names (the hub keeps what it finds)."""
    from jupyterhub.app import JupyterHub

    c = Config()
    c.JupyterHub.internal_ssl = True
    c.JupyterHub.internal_certs_location = str(site.hub.internal_certs_dir)
    c.JupyterHub.trusted_alt_names = internal_alt_names(site)
    c.JupyterHub.subdomain_host = subdomain_host(site)
    app = JupyterHub(config=c)

    async def make() -> None:  # its HTTP client, made last, wants a running loop
        app.init_internal_ssl()

    asyncio.run(make())
    api, client = app.internal_proxy_certs["proxy-api"], app.internal_proxy_certs["proxy-client"]
    bundles = app.internal_trust_bundles
    return ProxyCerts(
        api_key=api["keyfile"],
        api_cert=api["certfile"],
        api_ca=bundles["proxy-api-ca"],
        client_key=client["keyfile"],
        client_cert=client["certfile"],
        client_ca=bundles["proxy-client-ca"],
    )


def command_problem(site: SiteConfig) -> str:
    """Why hub.proxy_command cannot run here ("" when it can), naming the key."""
    command = site.hub.proxy_command
    if not os.path.exists(command):
        return f"key 'hub.proxy_command': {command} is not there (install configurable-http-proxy, or name where it is)"
    if not os.access(command, os.X_OK):
        return f"key 'hub.proxy_command': {command} is not executable by this account"
    return ""


def run_proxy(site: SiteConfig) -> None:
    """Become the proxy (the unit's ExecStart): exec configurable-http-proxy with the site's
    command line and the shared token, so that systemd (or ``start-proxy``) holds its pid.
    Returns only by raising SiteConfigError, which names the key to fix."""
    if not site.hub.proxy_on_its_own:
        raise SiteConfigError(
            "key 'hub.proxy_token_file': value '' means the hub starts the proxy as its child; "
            "set it to run the proxy on its own"
        )
    problem = command_problem(site)
    if problem:
        raise SiteConfigError(problem)
    environment = {**os.environ, TOKEN_VARIABLE: read_secret(site.hub.proxy_token_file, PROXY_TOKEN_KEY, "the proxy")}
    argv = proxy_argv(site, internal_certs(site) if site.hub.internal_ssl else None)
    os.umask(UMASK)
    os.execve(argv[0], argv, environment)
