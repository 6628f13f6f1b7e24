"""Turns the validated site config into JupyterHub settings.

``jupyterhub_config.py`` stays two lines; everything a centre may change is in the site
file, and everything we decide for every centre (PAM, our spawner, CHP, keeping jobs
across hub restarts) is here.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from aifactory.audit import AuditLog, install_audit
from aifactory.dask_config import write_dask_config
from aifactory.site_config import SiteConfig, SiteConfigError


def read_token(name: str, path: str, key: str = "hub.admin_services") -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as e:
        raise SiteConfigError(f"key '{key}': file {path!r} of {name!r} cannot be read: {e.strerror}") from e
    if len(token) < 16:
        raise SiteConfigError(f"key '{key}': file {path!r} of {name!r} holds under 16 characters")
    return token


def last_end_announcement(user: Any) -> str:
    """On the home page: why the user's last server ended (walltime, cancelled, ...)."""
    spawner = getattr(user, "spawner", None) if user is not None else None
    reason = getattr(spawner, "last_end", "") if spawner is not None else ""
    if not reason or spawner.active:
        return ""
    return (
        f'<span id="aifw-last-end">{html.escape(reason)}</span> '
        # Relative: the home page is {base_url}hub/home, whatever the base URL.
        '<a class="btn btn-sm btn-primary" href="spawn">Start it again</a>'
    )


def configure_oidc(c: Any, site: SiteConfig, audit: AuditLog) -> None:
    """OpenID Connect login; every missing or unreachable piece is named at start-up."""
    from aifactory.oidc import WorkbenchOIDCAuthenticator, discover

    auth = site.auth
    needed = {
        "auth.oidc_issuer": auth.oidc_issuer,
        "auth.oidc_client_id": auth.oidc_client_id,
        "auth.oidc_client_secret_file": auth.oidc_client_secret_file,
        "hub.public_url": site.hub.public_url,
    }
    for key, value in needed.items():
        if not value:
            raise SiteConfigError(f"key '{key}': value '' is not accepted with auth.method oidc; it is required")
    try:
        meta = discover(auth.oidc_issuer)
    except (OSError, ValueError) as e:
        raise SiteConfigError(f"key 'auth.oidc_issuer': {auth.oidc_issuer!r} gives no discovery document: {e}") from e
    c.JupyterHub.authenticator_class = WorkbenchOIDCAuthenticator
    a = c.WorkbenchOIDCAuthenticator
    a.authorize_url = meta["authorization_endpoint"]
    a.token_url = meta["token_endpoint"]
    a.userdata_url = meta["userinfo_endpoint"]
    a.client_id = auth.oidc_client_id
    a.client_secret = read_token(auth.oidc_client_id, auth.oidc_client_secret_file, "auth.oidc_client_secret_file")
    a.oauth_callback_url = site.hub.public_url.rstrip("/") + "/hub/oauth_callback"
    a.scope = ["openid", "profile", "email"]
    a.username_claim = auth.oidc_username_claim
    a.username_map = dict(auth.oidc_username_map)
    a.allowed_unix_groups = set(site.hub.allowed_groups)
    a.login_service = auth.oidc_login_service
    a.support_contact = auth.support_contact
    a.audit = audit


def configure(c: Any, site: SiteConfig) -> None:
    """Apply ``site`` to the traitlets config object ``c`` of jupyterhub_config.py."""
    # Imported here: importing batchspawner registers its handler, which we then replace.
    from spawners.channel import install_job_channel
    from spawners.estimate import install_estimate
    from spawners.slurm_spawner import WorkbenchSpawner

    hub, slurm = site.hub, site.slurm
    state = Path(hub.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)

    c.JupyterHub.ip = hub.ip
    c.JupyterHub.port = hub.port
    c.JupyterHub.hub_ip = hub.hub_ip
    c.JupyterHub.hub_port = hub.hub_port
    c.JupyterHub.hub_connect_ip = hub.connect_ip
    c.JupyterHub.db_url = hub.db_url or f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    # A hub restart must never cancel users' jobs.
    c.JupyterHub.cleanup_servers = False
    # After a restart, servers whose jobs were still queued are followed until they start:
    # the hub serves meanwhile instead of waiting for every check (see resume_start).
    c.JupyterHub.init_spawners_timeout = 10

    audit = AuditLog(state / "audit.log")
    install_audit(audit)
    c.Authenticator.post_auth_hook = audit.on_login
    c.JupyterHub.tornado_settings = {
        "log_function": audit.log_request,
        # JupyterHub already sets HttpOnly cookies, XSRF checks on every cookie-authenticated
        # POST and a CSP of frame-ancestors 'none'; these close what is left for hub pages.
        # The browser forgets the login when the hub would refuse it (tornado's default: 30 days).
        "cookie_options": {"samesite": "Lax", "expires_days": hub.cookie_max_age_days},
        "headers": {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"},
    }
    if hub.public_url:
        c.JupyterHub.public_url = hub.public_url  # https: cookies get the Secure flag
    c.JupyterHub.cookie_max_age_days = hub.cookie_max_age_days
    if hub.internal_ssl:
        # Certificates are made by the hub (in its state folder) and reach each job inside
        # its batch script: see WorkbenchSpawner.move_certs.
        c.JupyterHub.internal_ssl = True
        c.JupyterHub.internal_certs_location = str(state / "internal-ssl")
    c.WorkbenchSpawner.audit = audit

    c.Authenticator.admin_users = set(hub.admin_users)
    if site.auth.method == "oidc":
        configure_oidc(c, site, audit)
    else:
        c.JupyterHub.authenticator_class = "pam"
        c.PAMAuthenticator.allowed_groups = set(hub.allowed_groups)
        c.PAMAuthenticator.open_sessions = False

    c.JupyterHub.proxy_class = "configurable-http-proxy"
    c.ConfigurableHTTPProxy.command = [hub.proxy_command]
    scheme = "https" if hub.internal_ssl else "http"
    c.ConfigurableHTTPProxy.api_url = f"{scheme}://127.0.0.1:{hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

    services = [{"name": s["name"], "api_token": read_token(s["name"], s["token_file"])} for s in hub.admin_services]
    if services:
        c.JupyterHub.services = services
        c.JupyterHub.load_roles = [{"name": "admin", "services": [s["name"] for s in services]}]

    c.JupyterHub.allow_named_servers = hub.named_servers_per_user > 0
    c.JupyterHub.named_server_limit_per_user = hub.named_servers_per_user
    c.JupyterHub.template_vars = {"announcement_home": last_end_announcement}
    c.JupyterHub.spawner_class = WorkbenchSpawner
    c.Spawner.poll_interval = int(max(1, hub.poll_interval))
    # JupyterHub's timeout covers queue and start-up; ours (running_timeout) only start-up.
    c.Spawner.start_timeout = int(hub.queue_timeout + hub.start_timeout)
    c.WorkbenchSpawner.running_timeout = hub.start_timeout
    c.Spawner.http_timeout = int(hub.http_timeout)
    c.Spawner.default_url = site.singleuser.default_url
    c.WorkbenchSpawner.singleuser_venv = site.singleuser.venv
    c.WorkbenchSpawner.req_partition = slurm.partition
    c.WorkbenchSpawner.req_account = slurm.account
    c.WorkbenchSpawner.req_qos = slurm.qos
    c.WorkbenchSpawner.req_nprocs = str(slurm.cpus)
    c.WorkbenchSpawner.req_memory = slurm.memory
    c.WorkbenchSpawner.req_ngpus = str(slurm.gpus)
    c.WorkbenchSpawner.req_reservation = slurm.reservation
    c.WorkbenchSpawner.req_runtime = slurm.walltime
    c.WorkbenchSpawner.job_name = slurm.job_name
    c.WorkbenchSpawner.startup_poll_interval = slurm.startup_poll_interval
    c.WorkbenchSpawner.presets = site.form.presets
    c.WorkbenchSpawner.discovery_cache = site.form.discovery_cache
    c.WorkbenchSpawner.usage_days = site.form.usage_days
    install_job_channel()
    install_estimate()
    write_dask_config(site)
