"""Issue 35, item 5: the proxy on its own. Its command line is JupyterHub's for it, built from the
site file alone; the hub then neither starts nor stops it and shares its token; its certificates
are made as the hub makes them when no hub has yet; a missing proxy or token is named by its key.
(tests/integration/test_proxy_on_its_own.py restarts a hub under open connections.)"""

from __future__ import annotations

import errno
import grp
import os
from pathlib import Path

import pytest
from traitlets.config import Config

from aifactory_workbench.hub.configure import update_proxy
from aifactory_workbench.hub.proxy import ProxyCerts, command_problem, internal_certs, proxy_argv, run_proxy
from aifactory_workbench.hub.site import SiteConfigError, load_site_config
from aifactory_workbench.hub.site_cli import main as cli_main
from aifactory_workbench.hub.tls import internal_certificate, internal_certificate_problems
from aifactory_workbench.root.proxy_token import proxy_token
from tests.unit.defaults import site_file
from tests.unit.doctors import doctor

REPO = Path(__file__).parents[2]
DEMO_SITE = REPO / "config" / "site.yaml"
SSL = "/var/lib/aifactory/hub/internal-ssl"
#: The demo's proxy as JupyterHub 6.1 started it as its child (ps of the demo, config/site.yaml):
#: the command line the proxy on its own must have.
JUPYTERHUBS_COMMAND_LINE = [
    "/opt/aifactory/node/node_modules/.bin/configurable-http-proxy",
    *("--ip", "", "--port", "8000", "--api-ip", "127.0.0.1", "--api-port", "8001"),
    *("--error-target", "https://mn5-login:8081/hub/error", "--log-level", "info", "--host-routing"),
    *("--ssl-key", "/etc/aifactory/tls/hub.key", "--ssl-cert", "/etc/aifactory/tls/hub.crt"),
    *("--api-ssl-key", f"{SSL}/proxy-api/proxy-api.key", "--api-ssl-cert", f"{SSL}/proxy-api/proxy-api.crt"),
    *("--api-ssl-ca", f"{SSL}/proxy-api-ca_trust.crt", "--api-ssl-request-cert", "--api-ssl-reject-unauthorized"),
    *("--client-ssl-key", f"{SSL}/proxy-client/proxy-client.key"),
    *("--client-ssl-cert", f"{SSL}/proxy-client/proxy-client.crt"),
    *("--client-ssl-ca", f"{SSL}/proxy-client-ca_trust.crt"),
    *("--client-ssl-request-cert", "--client-ssl-reject-unauthorized"),
]
DEMO_CERTS = ProxyCerts(
    api_key=f"{SSL}/proxy-api/proxy-api.key",
    api_cert=f"{SSL}/proxy-api/proxy-api.crt",
    api_ca=f"{SSL}/proxy-api-ca_trust.crt",
    client_key=f"{SSL}/proxy-client/proxy-client.key",
    client_cert=f"{SSL}/proxy-client/proxy-client.crt",
    client_ca=f"{SSL}/proxy-client-ca_trust.crt",
)


def test_the_demos_command_line_is_the_one_jupyterhub_built():
    assert proxy_argv(load_site_config(DEMO_SITE), DEMO_CERTS) == JUPYTERHUBS_COMMAND_LINE


def test_plain_http_on_one_origin_has_no_tls_and_no_host_routing(tmp_path: Path):
    text = "hub: {ip: 10.0.0.5, port: 9000, proxy_api_port: 9001, user_subdomains: false, public_url: ''}\n"
    argv = proxy_argv(load_site_config(site_file(tmp_path, text)), None)
    assert argv[1:] == [
        *("--ip", "10.0.0.5", "--port", "9000", "--api-ip", "127.0.0.1", "--api-port", "9001"),
        *("--error-target", "http://127.0.0.1:8081/hub/error", "--log-level", "info"),
    ]


def test_internal_tls_needs_the_certificates(tmp_path: Path):
    site = load_site_config(site_file(tmp_path, "hub: {internal_ssl: true}\n"))
    with pytest.raises(ValueError, match="certificates"):
        proxy_argv(site, None)


def token_site(tmp_path: Path, token: str | None) -> Path:
    path = tmp_path / "proxy.token"
    if token is not None:
        path.write_text(token + "\n")
    return site_file(tmp_path, f"hub: {{proxy_token_file: {path}, state_dir: {tmp_path / 'state'}}}\n")


def test_on_its_own_the_hub_neither_starts_nor_stops_the_proxy_and_shares_its_token(tmp_path: Path):
    c = Config()
    update_proxy(c, load_site_config(token_site(tmp_path, "t" * 64)))
    assert c.ConfigurableHTTPProxy.should_start is False and c.JupyterHub.cleanup_proxy is False
    assert c.ConfigurableHTTPProxy.auth_token == "t" * 64
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"


def test_as_the_hubs_child_jupyterhub_starts_it(tmp_path: Path):
    c = Config()
    update_proxy(c, load_site_config(site_file(tmp_path, "hub: {proxy_token_file: '', internal_ssl: true}\n")))
    assert "should_start" not in c.ConfigurableHTTPProxy and "cleanup_proxy" not in c.JupyterHub
    assert "auth_token" not in c.ConfigurableHTTPProxy
    assert c.ConfigurableHTTPProxy.api_url == "https://127.0.0.1:8001"


def test_a_missing_or_short_token_is_named_by_its_key(tmp_path: Path):
    with pytest.raises(SiteConfigError, match=r"key 'hub.proxy_token_file': file .* cannot be read"):
        update_proxy(Config(), load_site_config(token_site(tmp_path, None)))
    with pytest.raises(SiteConfigError, match=r"key 'hub.proxy_token_file': .* under 16 characters"):
        update_proxy(Config(), load_site_config(token_site(tmp_path, "short")))


def test_a_proxy_that_is_not_there_fails_check_and_the_proxy_command(tmp_path: Path, capsys):
    missing = tmp_path / "no-such-proxy"
    path = token_site(tmp_path, "t" * 64)
    path.write_text(path.read_text().replace("hub:", f"hub:\n  proxy_command: {missing}\n", 1))
    site = load_site_config(path)
    assert command_problem(site) == (
        f"key 'hub.proxy_command': {missing} is not there (install configurable-http-proxy, or name where it is)"
    )
    assert cli_main(["check", str(path)]) == 1
    assert f"key 'hub.proxy_command': {missing} is not there" in capsys.readouterr().err
    with pytest.raises(SiteConfigError, match=f"key 'hub.proxy_command': {missing} is not there"):
        run_proxy(site)


def test_the_proxy_refuses_a_site_whose_hub_starts_its_proxy(tmp_path: Path):
    with pytest.raises(SiteConfigError, match="key 'hub.proxy_token_file': value '' means the hub starts the proxy"):
        run_proxy(load_site_config(site_file(tmp_path, "hub: {proxy_token_file: ''}\n")))


@pytest.mark.skipif(os.geteuid() != 0, reason="as root")
def test_the_proxy_command_refuses_root(tmp_path: Path, capsys):
    assert cli_main(["proxy", str(token_site(tmp_path, "t" * 64))]) == 1
    assert "run it as the hub's account (the proxy unit's User), not as root" in capsys.readouterr().err


def test_a_first_start_makes_the_certificates_as_the_hub_would_and_a_second_keeps_them(tmp_path: Path):
    text = f"hub: {{internal_ssl: true, state_dir: {tmp_path / 'state'}, connect_ip: mn5-login}}\n"
    site = load_site_config(site_file(tmp_path, text))
    first = internal_certs(site)
    folder = site.hub.internal_certs_dir
    assert first == ProxyCerts(
        api_key=f"{folder}/proxy-api/proxy-api.key",
        api_cert=f"{folder}/proxy-api/proxy-api.crt",
        api_ca=f"{folder}/proxy-api-ca_trust.crt",
        client_key=f"{folder}/proxy-client/proxy-client.key",
        client_cert=f"{folder}/proxy-client/proxy-client.crt",
        client_ca=f"{folder}/proxy-client-ca_trust.crt",
    )
    made = {p: p.read_bytes() for p in folder.rglob("*.crt")}
    # The hub's own certificate names what the hub's would (hub/configure.py's internal_alt_names).
    assert internal_certificate(folder, "hub-internal").exists()
    for key, host in {"hub.connect_ip": "mn5-login", "hub.user_subdomains": "user.hub.example.eu"}.items():
        assert internal_certificate_problems(folder, host, key) == []
    assert internal_certificate_problems(folder, "hub.elsewhere.org")
    assert internal_certs(site) == first
    assert {p: p.read_bytes() for p in folder.rglob("*.crt") if not p.name.endswith("_trust.crt")} == {
        p: b for p, b in made.items() if not p.name.endswith("_trust.crt")
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="root makes the token root's")
def test_the_token_is_made_once_roots_and_read_by_the_hubs_group_alone(tmp_path: Path):
    group = grp.getgrgid(os.getgid()).gr_name
    token = tmp_path / "proxy.token"
    assert proxy_token(token, group) is True
    text, info = token.read_text(), token.stat()
    assert len(text.strip()) == 64 and (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, os.getgid(), 0o640)
    assert proxy_token(token, group) is False and token.read_text() == text
    token.chmod(0o644)
    assert proxy_token(token, group) is True and token.stat().st_mode & 0o777 == 0o640 and token.read_text() == text
    link = tmp_path / "link.token"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RuntimeError, match="is not a file"):
        proxy_token(link, group)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="root makes the token root's")
def test_the_doctor_names_a_token_others_may_read_or_that_is_not_there(tmp_path: Path):
    token = tmp_path / "proxy.token"
    text = f"hub: {{proxy_token_file: {token}}}"
    check = doctor(tmp_path, text).proxy_token()
    assert check.ok is False and "No such file" in check.detail and "aifactory-site install" in check.fix
    proxy_token(token, grp.getgrgid(os.getgid()).gr_name)
    assert doctor(tmp_path, text).proxy_token().ok is True
    token.chmod(0o644)
    check = doctor(tmp_path, text).proxy_token()
    assert check.ok is False and "-rw-r--r-- root" in check.detail and "only the hub read it" in check.detail
    token.chmod(0o640)
    check = doctor(tmp_path, text, **{"test -r": (1, "", "")}).proxy_token()
    assert check.ok is False and "aifactory-hub cannot read" in check.detail
    assert doctor(tmp_path, "hub: {proxy_token_file: ''}").proxy_token().ok is None


def test_a_public_port_below_1024_is_the_proxy_units_to_allow_when_it_runs_on_its_own(tmp_path: Path):
    bind = {"getaddrinfo": (0, f"{errno.EACCES}\n0\n0\n", "")}
    for token_file, unit in (("/etc/aifactory/proxy.token", "aifactory-proxy"), ("''", "aifactory-hub")):
        made = doctor(tmp_path, f"hub: {{port: 443, proxy_token_file: {token_file}}}", **bind)
        made.venv_runs = True
        check = made.ports()
        assert check.ok is False and f"systemctl edit {unit}.service," in check.fix, check
