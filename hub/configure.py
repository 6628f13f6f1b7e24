"""Turns the validated site config into JupyterHub settings.

``jupyterhub_config.py`` calls :func:`configure` once; everything a centre may change is
in the site file, and everything we decide for every centre (our spawner, CHP, keeping jobs
across hub restarts) is here, one ``update_<section>(c, ...)`` function per concern, each
testable on a bare ``traitlets.config.Config()``.

A site moving from stock batchspawner may keep its ``c.SlurmSpawner.req_*`` lines: written
*before* ``configure()`` runs, they win over the site file's ``slurm.*`` (the hub logs
which); settings this spawner cannot honour stop the hub, named (see
``aifactory_workbench.spawners.spawner.REFUSED_SETTINGS``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from traitlets.config import Config
from traitlets.log import get_logger

from aifactory_workbench.hub.audit import AuditLog
from aifactory_workbench.hub.culler import append, note_culled, update_culler
from aifactory_workbench.hub.database import database_problem, db_kwargs, schema_problem, shown_url
from aifactory_workbench.hub.gallery_pages import CUSTOM_SCOPES, PUBLISH_SCOPE
from aifactory_workbench.hub.navigation import navigation
from aifactory_workbench.hub.pam import WorkbenchPAMAuthenticator
from aifactory_workbench.hub.routes import install_routes
from aifactory_workbench.hub.sharing import shared_with_me
from aifactory_workbench.hub.site import SiteConfig, SiteConfigError, read_secret
from aifactory_workbench.hub.tls import front_certificate_problems, internal_certificate, internal_certificate_problems
from aifactory_workbench.hub.workshop_pages import keep_forgetting_ended_seats, workshop_groups
from aifactory_workbench.root.dask_config import check_dask_config
from aifactory_workbench.slurm.client import Slurm
from aifactory_workbench.slurm.display import duration_text
from aifactory_workbench.spawners.form import ENVIRONMENTS_SCRIPT, page_script
from aifactory_workbench.spawners.gallery import Gallery
from aifactory_workbench.spawners.seats import Registry, registry_problem
from aifactory_workbench.spawners.services import Services
from aifactory_workbench.spawners.spawner import JOB_SETTING_TRAITS, WorkbenchSpawner, alt_name

#: Our page templates (workshops.html) sit beside this module; JupyterHub's own come after.
TEMPLATES = Path(__file__).parent
#: The logo every hub page shows unless the site file names its own (brand.logo_file).
DEFAULT_LOGO = TEMPLATES / "logo.svg"
#: A user's origin as the internal certificate's check names one (its wildcard covers every user).
USER_ORIGIN_EXAMPLE = "user"


def words_durations(user: Any) -> Callable[[float], str]:
    """The pages' duration wording (``duration_text``), as JupyterHub hands a template variable
    to a page: called with its user (None on the login page), it answers the rule itself."""
    return duration_text


def last_end_notice(user: Any) -> str:
    """What happened to the user's last job (walltime, cancelled after N min, ...), while none
    runs: on the spawn form, where stopping a queued job leads, and on the home page."""
    spawner = getattr(user, "spawner", None) if user is not None else None
    reason = getattr(spawner, "last_end", "") if spawner is not None and not spawner.active else ""
    return f'<span id="aifw-last-end">{html.escape(reason)}</span>' if reason else ""


def last_end_announcement(user: Any) -> str:
    """On the home page: the last job's end with a way to start again, or, while a server runs,
    the way to share it."""
    spawner = getattr(user, "spawner", None) if user is not None else None
    if spawner is not None and spawner.active:
        # Relative: the home page is {base_url}hub/home, whatever the base URL.
        return '<a id="aifw-share-link" href="share">Share your running session with a colleague</a>'
    notice = last_end_notice(user)
    return f'{notice} <a class="btn btn-sm btn-primary" href="spawn">Start it again</a>' if notice else ""


def prepare_state_dir(site: SiteConfig) -> Path:
    state = Path(site.hub.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    return state


def update_hub(c: Config, site: SiteConfig, audit: AuditLog) -> None:
    """Where the hub listens, its database and state, cookies and headers, restart behaviour."""
    hub = site.hub
    state = Path(hub.state_dir)
    c.JupyterHub.ip = hub.ip
    c.JupyterHub.port = hub.port
    c.JupyterHub.hub_ip = hub.hub_ip
    c.JupyterHub.hub_port = hub.hub_port
    c.JupyterHub.hub_connect_ip = hub.connect_ip
    c.JupyterHub.db_url = hub.database_url
    c.JupyterHub.db_kwargs = db_kwargs(hub.db_url)
    problem = database_problem(hub.db_url)
    if problem:
        raise SiteConfigError(
            f"key 'hub.db_url': the database {shown_url(hub.db_url)} does not answer ({problem}). Nothing was "
            "started and no session is lost: start the database (the mini cluster's: cluster/minicluster.sh start), "
            "or correct the URL"
        )
    problem = schema_problem(hub.database_url)
    if problem:
        raise SiteConfigError(f"key 'hub.db_url': {problem}. Nothing was started and no session is lost")
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    # A hub restart must never cancel users' jobs.
    c.JupyterHub.cleanup_servers = False
    # After a restart, servers whose jobs were still queued are followed until they start:
    # the hub serves meanwhile instead of waiting for every check (see WorkbenchSpawner.poll and JobEngine.resume).
    c.JupyterHub.init_spawners_timeout = 10

    def log_request(handler: Any) -> None:
        audit.log_request(handler)
        note_culled(handler, site)

    c.JupyterHub.tornado_settings = {
        "log_function": log_request,
        # JupyterHub already sets HttpOnly cookies, XSRF checks on every cookie-authenticated
        # POST and a CSP of frame-ancestors 'none'; these close what is left for hub pages.
        # The browser forgets the login when the hub would refuse it (tornado's default: 30 days).
        "cookie_options": {"samesite": "Lax", "expires_days": hub.cookie_max_age_days},
        "headers": {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"},
    }
    c.JupyterHub.cookie_max_age_days = hub.cookie_max_age_days
    if hub.internal_ssl:
        # Certificates are made by the hub (in its state folder) and reach each job inside
        # its batch script: see WorkbenchSpawner.move_certs.
        c.JupyterHub.internal_ssl = True
        c.JupyterHub.internal_certs_location = str(hub.internal_certs_dir)
    c.JupyterHub.allow_named_servers = hub.named_servers_per_user > 0
    c.JupyterHub.named_server_limit_per_user = hub.named_servers_per_user
    c.JupyterHub.template_vars = {"announcement_home": last_end_announcement, "announcement_spawn": last_end_notice}
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    # Publishing needs a scope that users and servers' own tokens (aifactory-publish) carry and
    # servers' OAuth clients are never allowed (hub/gallery_pages.py; the server role: update_server_token).
    c.JupyterHub.custom_scopes = CUSTOM_SCOPES
    # Each user may share their own servers (JupyterHub's share API, /hub/share); naming a
    # colleague needs read:users:name (a name's existence, never a list of users).
    sharing = ["shares!user", "read:users:name"] if hub.user_sharing else []
    append(c, "load_roles", {"name": "user", "scopes": ["self", PUBLISH_SCOPE, *sharing]})
    c.JupyterHub.template_vars["shared_with_me"] = shared_with_me  # the home page's "Shared with you"
    # The home page's "Your environments": the spawn form's script for it (spawners/js/environments.js).
    c.JupyterHub.template_vars["environments_script"] = page_script([ENVIRONMENTS_SCRIPT])
    # Durations in the pages' own words, one rule with the session card's (slurm/display.py).
    # JupyterHub calls a callable template variable with the page's user: this one answers the rule.
    c.JupyterHub.template_vars["duration_text"] = words_durations
    services = [
        {"name": s["name"], "api_token": read_secret(s["token_file"], "hub.admin_services", s["name"])}
        for s in hub.admin_services
    ]
    for service in services:
        append(c, "services", service)
    if services:
        append(c, "load_roles", {"name": "admin", "services": [s["name"] for s in services]})


def update_brand(c: Config, site: SiteConfig) -> None:
    """The product's name, logo and support contact on every hub page (page.html), all served
    by the hub itself."""
    brand = site.brand
    if brand.logo_file and not os.access(brand.logo_file, os.R_OK):
        raise SiteConfigError(f"key 'brand.logo_file': {brand.logo_file!r} cannot be read")
    c.JupyterHub.logo_file = brand.logo_file or str(DEFAULT_LOGO)
    c.JupyterHub.template_vars = {
        **c.JupyterHub.template_vars,
        "brand": {
            "product_name": brand.product_name,
            "support_contact": brand.support_contact,
            "support_url": brand.support_url,
        },
    }


def update_front(c: Config, site: SiteConfig) -> None:
    """The public front: each user's JupyterLab on its own origin (a page one user's server
    sends cannot use another user's hub login), and https at the proxy with the site's
    certificate, checked here so that a wrong one stops the hub instead of every browser."""
    hub = site.hub
    front = urlsplit(hub.public_url)
    if hub.public_url:
        c.JupyterHub.public_url = hub.public_url  # https: cookies get the Secure flag
    if hub.user_subdomains:
        c.JupyterHub.subdomain_host = subdomain_host(site)
        # Users' origins are children of the hub's host, so a page a user serves may set cookies
        # for the hub's whole domain.  A __Host- cookie is host-only by the browser's own rule:
        # none of theirs can stand in for a hub login (or a server's).  Browsers take such
        # cookies over https only.
        c.JupyterHub.cookie_host_prefix_enabled = front.scheme == "https"
    # Error pages are also served on users' origins (a stopped server's address): their way home
    # is the hub's own origin, not a relative link that stays on the user's.
    c.JupyterHub.template_vars.update({"hub_url": urljoin(hub.public_url or "/", "hub/")})
    if hub.internal_ssl:
        c.JupyterHub.trusted_alt_names = internal_alt_names(site)
        for key, host in internal_hosts(site).items():
            problems = internal_certificate_problems(hub.internal_certs_dir, host, key)
            if problems:
                raise SiteConfigError(problems[0])
    if hub.ssl_cert:
        name = front.hostname or ""  # site.py: with ssl_cert, public_url is an https:// URL with a host
        hosts = [name] + ([f"*.{name}"] if hub.user_subdomains else [])
        problems = front_certificate_problems(hub.ssl_cert, hub.ssl_key, hosts)
        if problems:
            raise SiteConfigError("the https front is not usable:\n" + "\n".join(f"  - {p}" for p in problems))
        c.JupyterHub.ssl_cert = hub.ssl_cert
        c.JupyterHub.ssl_key = hub.ssl_key


def subdomain_host(site: SiteConfig) -> str:
    """JupyterHub's subdomain_host with hub.user_subdomains: the public URL's scheme and host."""
    front = urlsplit(site.hub.public_url)
    return f"{front.scheme}://{front.netloc}" if site.hub.user_subdomains else ""


def internal_hosts(site: SiteConfig) -> dict[str, str]:
    """With internal TLS, the hosts the hub's certificate must name, each with the key it comes
    from. The proxy checks the hub's certificate against the host the browser asked for: the
    hub's, and every user's origin (a stopped server's address falls through to the hub), and
    the servers on compute nodes against the host they reach the hub at."""
    hub = site.hub
    public = urlsplit(hub.public_url).hostname
    named = {"hub.connect_ip": hub.connect_ip, "hub.public_url": public}
    hosts = {key: host for key, host in named.items() if host}
    if hub.user_subdomains:
        hosts["hub.user_subdomains"] = f"{USER_ORIGIN_EXAMPLE}.{public}"
    return hosts


def internal_alt_names(site: SiteConfig) -> list[str]:
    """JupyterHub's trusted_alt_names: the names of :func:`internal_hosts`, every user's origin
    as one wildcard."""
    hosts = internal_hosts(site)
    names = [alt_name(host) for key, host in hosts.items() if key != "hub.user_subdomains"]
    if "hub.user_subdomains" in hosts:
        names.append(f"DNS:*.{urlsplit(site.hub.public_url).hostname}")
    return names


#: The site key of the token the hub and a proxy of its own share.
PROXY_TOKEN_KEY = "hub.proxy_token_file"


def update_proxy(c: Config, site: SiteConfig) -> None:
    """configurable-http-proxy, its API on loopback at hub.proxy_api_port. On its own
    (hub.proxy_token_file; hub/proxy.py starts it), the hub neither starts nor stops it and
    shares its token, so a hub restart keeps every open connection; else the hub starts it as
    its child."""
    hub = site.hub
    c.JupyterHub.proxy_class = "configurable-http-proxy"
    c.ConfigurableHTTPProxy.command = [hub.proxy_command]
    scheme = "https" if hub.internal_ssl else "http"
    c.ConfigurableHTTPProxy.api_url = f"{scheme}://127.0.0.1:{hub.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(Path(hub.state_dir) / "proxy.pid")
    if hub.proxy_on_its_own:
        c.ConfigurableHTTPProxy.should_start = False
        c.JupyterHub.cleanup_proxy = False
        c.ConfigurableHTTPProxy.auth_token = read_secret(hub.proxy_token_file, PROXY_TOKEN_KEY, "the proxy")


def update_auth(c: Config, site: SiteConfig, audit: AuditLog) -> None:
    """PAM (Unix passwords) or OpenID Connect; every login is audited."""
    c.Authenticator.post_auth_hook = audit.on_login
    c.Authenticator.admin_users = set(site.hub.admin_users)
    if site.auth.method == "oidc":
        update_oidc(c, site, audit)
    else:
        c.JupyterHub.authenticator_class = WorkbenchPAMAuthenticator
        c.WorkbenchPAMAuthenticator.allowed_groups = set(site.hub.allowed_groups)
        c.WorkbenchPAMAuthenticator.open_sessions = False
        c.WorkbenchPAMAuthenticator.failure_delay = site.auth.failure_delay
        c.WorkbenchPAMAuthenticator.lockout_failures = site.auth.lockout_failures
        c.WorkbenchPAMAuthenticator.lockout_seconds = site.auth.lockout_seconds


def update_oidc(c: Config, site: SiteConfig, audit: AuditLog) -> None:
    """OpenID Connect login; every missing or unreachable piece is named at start-up."""
    from aifactory_workbench.hub.oidc import WorkbenchOIDCAuthenticator, discover

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
    if not site.hub.allowed_groups:
        raise SiteConfigError(
            "key 'hub.allowed_groups': value [] is not accepted with auth.method oidc; "
            "name the Unix groups whose members may sign in"
        )
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
    a.client_secret = read_secret(auth.oidc_client_secret_file, "auth.oidc_client_secret_file", auth.oidc_client_id)
    a.oauth_callback_url = site.hub.public_url.rstrip("/") + "/hub/oauth_callback"
    a.scope = ["openid", "profile", "email"]
    a.username_claim = auth.oidc_username_claim
    a.unix_account_map = dict(auth.oidc_username_map)
    a.allowed_unix_groups = set(site.hub.allowed_groups)
    a.login_service = auth.oidc_login_service
    a.support_contact = site.brand.support_contact
    a.audit = audit


def spawner_settings(site: SiteConfig) -> dict[str, tuple[Any, str]]:
    """Each spawner setting the site file gives, with the site key it comes from."""
    hub, slurm = site.hub, site.slurm
    settings = {trait: (getattr(slurm, name), f"slurm.{name}") for name, trait in JOB_SETTING_TRAITS.items()}
    settings |= {
        "job_name": (slurm.job_name, "slurm.job_name"),
        "startup_poll_interval": (slurm.startup_poll_interval, "slurm.startup_poll_interval"),
        "poll_interval": (int(max(1, hub.poll_interval)), "hub.poll_interval"),
        # JupyterHub's timeout covers queue and start-up; ours (running_timeout) only start-up.
        "start_timeout": (int(hub.queue_timeout + hub.start_timeout), "hub.queue_timeout + hub.start_timeout"),
        "running_timeout": (hub.start_timeout, "hub.start_timeout"),
        "http_timeout": (int(hub.http_timeout), "hub.http_timeout"),
        "default_url": (site.singleuser.default_url, "singleuser.default_url"),
        "singleuser_venv": (site.singleuser.venv, "singleuser.venv"),
        "warn_minutes": (site.singleuser.warn_minutes, "singleuser.warn_minutes"),
        "save_before_end": (site.singleuser.save_before_end, "singleuser.save_before_end"),
        "extend_minutes": ((site.singleuser.extend_minutes or (0,))[0], "singleuser.extend"),
        "prologue": (site.singleuser.prologue, "singleuser.prologue"),
        "lmod_init": (site.singleuser.lmod_init, "singleuser.lmod_init"),
        "port_range": (site.singleuser.port_range, "singleuser.port_range"),
        "package_index": (site.environments.uv_options, "environments"),
        "presets": (site.form.presets, "form.presets"),
        "notebook_job": (site.form.notebook_job, "form.notebook_job"),
        "usage_days": (site.form.usage_days, "form.usage_days"),
        "alternatives_after": (site.form.alternatives_after, "form.alternatives_after"),
    }
    return settings


def set_in_config(c: Config, cls: type, key: str) -> str:
    """The config section (this class or a base) that already sets ``key``, or ""."""
    for base in cls.__mro__:
        name = base.__name__
        if name in c and key in c[name]:
            return name
    return ""


def update_workshops(c: Config, site: SiteConfig) -> Registry:
    """The workshops made so far: their seats' groups and instructors' roles, as the hub starts
    (JupyterHub keeps only the roles its config names); later ones arrive through the API."""
    directory = Path(site.workshops.registry)
    problem = registry_problem(directory)
    if problem:
        raise SiteConfigError(f"key 'workshops.registry': {problem}")
    registry = Registry(directory)
    groups: dict[str, dict[str, list[str]]] = {}
    for workshop in registry.workshops().values():
        groups |= workshop_groups(workshop)
        append(c, "load_roles", workshop.role())
    if groups:
        c.JupyterHub.load_groups = groups
    keep_forgetting_ended_seats(registry)  # seats of workshops that ended while the hub was down
    return registry


def update_navigation(c: Config, site: SiteConfig, registry: Registry | None) -> None:
    """The links atop every hub page (hub/navigation.py), which depend on who is signed in."""
    c.JupyterHub.template_vars["nav"] = navigation(registry, sharing=site.hub.user_sharing)


def open_gallery(site: SiteConfig) -> Gallery:
    """The gallery's folder must be the hub's to write and everyone's to read; if it is not,
    the hub still starts, and publishing says why it cannot."""
    gallery = Gallery(site.gallery.dir, site.environments.uv_options)
    if not os.access(site.gallery.dir, os.W_OK | os.X_OK):
        get_logger().warning("gallery.dir %s is not writable by the hub: publishing is refused", site.gallery.dir)
    return gallery


#: What a server's own token may do (JupyterHub's "server" role): report its activity, be reached,
#: and publish (aifactory-publish, hub/gallery_pages.py).
SERVER_ROLE_SCOPES = ["users:activity!user", "access:servers!server", PUBLISH_SCOPE]


def update_server_token(c: Config, site: SiteConfig) -> None:
    """The server role; where the site offers extensions, a server's own token may also extend that
    server's session (JupyterLab's Extend button calls the hub's extend API with it, lab/session.py):
    ``servers`` on that one server. (The role, not ``server_token_scopes``, which would replace it.)"""
    extend = ["servers!server"] if site.singleuser.extend_minutes else []
    append(c, "load_roles", {"name": "server", "scopes": [*SERVER_ROLE_SCOPES, *extend]})


def update_spawner(
    c: Config, site: SiteConfig, audit: AuditLog, registry: Registry | None = None, gallery: Gallery | None = None
) -> Services:
    """Our spawner with the site's job defaults (a setting made above configure() wins, logged),
    refused settings named, and the services every spawner shares built once."""
    c.JupyterHub.spawner_class = WorkbenchSpawner
    for key, (value, site_key) in spawner_settings(site).items():
        section = set_in_config(c, WorkbenchSpawner, key)
        if section:
            get_logger().warning("c.%s.%s = %r overrides the site file's %s", section, key, c[section][key], site_key)
        else:
            c.WorkbenchSpawner[key] = value
    problems = WorkbenchSpawner.config_problems(c)
    if problems:
        raise SiteConfigError("the spawner's settings are not usable:\n" + "\n".join(f"  - {p}" for p in problems))
    effective = WorkbenchSpawner(config=c)
    services = Services.build(
        job_name=effective.job_name,
        poll_interval=effective.poll_interval,
        startup_poll_interval=effective.startup_poll_interval,
        discovery_cache=site.form.discovery_cache,
        slurm=Slurm(bin_dir=site.slurm.bin_dir),
        audit=audit,
        workshops=registry,
        gallery=gallery,
    )
    c.WorkbenchSpawner.services = services
    return services


def configure(c: Config, site: SiteConfig) -> Services:
    """Apply ``site`` to the traitlets config object ``c`` of jupyterhub_config.py."""
    state = prepare_state_dir(site)
    proxy = internal_certificate(site.hub.internal_certs_dir, "proxy-client") if site.hub.internal_ssl else None
    audit = AuditLog(state / "audit.log", proxy_certificate=proxy)
    update_hub(c, site, audit)
    update_front(c, site)
    update_brand(c, site)
    update_proxy(c, site)
    update_auth(c, site, audit)
    registry = update_workshops(c, site)
    update_navigation(c, site, registry)
    update_culler(c, site)
    gallery = open_gallery(site)
    services = update_spawner(c, site, audit, registry, gallery)
    update_server_token(c, site)
    install_routes(audit, registry, gallery, site, session_job_name=services.watcher.job_name)
    check_dask_config(site)
    return services
