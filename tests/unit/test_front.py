"""The public front (issue 11, hole 1): per-user origins by default, https with the site's
certificate, and every wrong combination named before the hub starts."""

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from traitlets.config import Config

from aifactory_workbench.hub.configure import update_front
from aifactory_workbench.hub.site import SiteConfigError, load_site_config
from aifactory_workbench.hub.tls import internal_certificate_problems, names_host

from .defaults import DEFAULTS, site_file

MAKE_CERTS = Path(__file__).parents[2] / "cluster" / "tls" / "make-demo-certs.sh"


def site(**hub):
    return replace(DEFAULTS, hub=replace(DEFAULTS.hub, **hub))


def demo_certs(directory: Path, host: str) -> Path:
    subprocess.run(["bash", str(MAKE_CERTS), str(directory), host], check=True, capture_output=True)
    return directory


def test_each_users_server_gets_its_own_origin_under_the_public_host():
    c = Config()
    update_front(c, site(public_url="https://hub.example.eu/"))
    assert c.JupyterHub.subdomain_host == "https://hub.example.eu"
    assert c.JupyterHub.public_url == "https://hub.example.eu/"
    assert "ssl_cert" not in c.JupyterHub
    # Host-only login and server cookies (__Host-): no user's origin can toss one (issue 21, hole 15).
    assert c.JupyterHub.cookie_host_prefix_enabled is True
    c = Config()
    update_front(c, site(public_url="http://hub.localhost:8000/"))
    assert c.JupyterHub.cookie_host_prefix_enabled is False  # browsers take __Host- over https only


def test_one_origin_for_everyone_only_when_the_site_says_so():
    c = Config()
    update_front(c, site(public_url="", user_subdomains=False))
    assert "subdomain_host" not in c.JupyterHub and "public_url" not in c.JupyterHub


@pytest.mark.parametrize(
    ("hub", "expected"),
    [
        ("{}", "key 'hub.public_url': value '' is not accepted with hub.user_subdomains true"),
        ("{public_url: 'http://127.0.0.1:8000/'}", "a URL with a host name (users' servers get names under it)"),
        ("{public_url: 'https://hub.example.eu/', ssl_cert: /etc/x.crt}", "key 'hub.ssl_key': value ''"),
        ("{public_url: 'http://hub.example.eu/', ssl_cert: /a, ssl_key: /b}", "accepted: an https:// URL"),
    ],
)
def test_the_site_file_names_a_front_that_cannot_work(tmp_path, hub, expected):
    path = tmp_path / "site.yaml"
    path.write_text(f"hub: {hub}\n")
    with pytest.raises(SiteConfigError, match=expected.replace("(", "\\(").replace(")", "\\)")):
        load_site_config(path)


def test_a_site_without_subdomains_needs_no_public_url(tmp_path):
    assert not load_site_config(
        site_file(tmp_path, "hub: {user_subdomains: false, public_url: ''}")
    ).hub.user_subdomains


def test_the_demo_certificate_serves_the_hub_and_every_users_host(tmp_path):
    certs = demo_certs(tmp_path / "tls", "hub.localhost")
    c = Config()
    front = dict(
        public_url="https://hub.localhost:8000/", ssl_cert=str(certs / "hub.crt"), ssl_key=str(certs / "hub.key")
    )
    update_front(c, site(**front))
    assert (c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key) == (front["ssl_cert"], front["ssl_key"])
    verify = subprocess.run(["openssl", "verify", "-CAfile", certs / "ca.crt", certs / "hub.crt"], capture_output=True)
    assert verify.returncode == 0
    assert not (certs / "ca.key").exists()  # the demo CA signs this certificate and nothing else


def test_a_certificate_for_another_host_or_key_stops_the_hub_with_what_is_wrong(tmp_path):
    other = demo_certs(tmp_path / "other", "hub.example.org")
    mine = demo_certs(tmp_path / "mine", "hub.example.eu")
    with pytest.raises(
        SiteConfigError, match="names hub.example.org, \\*.hub.example.org, not hub.example.eu, \\*.hub"
    ):
        update_front(
            Config(),
            site(public_url="https://hub.example.eu/", ssl_cert=str(other / "hub.crt"), ssl_key=str(other / "hub.key")),
        )
    with pytest.raises(SiteConfigError, match="is not the key of"):
        update_front(
            Config(),
            site(public_url="https://hub.example.eu/", ssl_cert=str(mine / "hub.crt"), ssl_key=str(other / "hub.key")),
        )
    with pytest.raises(SiteConfigError, match="cannot be read by the hub: No such file"):
        update_front(
            Config(),
            site(
                public_url="https://hub.example.eu/", ssl_cert=str(tmp_path / "none.crt"), ssl_key=str(mine / "hub.key")
            ),
        )


def test_a_wildcard_names_one_label_only():
    assert names_host(["*.hub.example.eu"], "alice.hub.example.eu")
    assert names_host(["*.hub.example.eu"], "*.hub.example.eu")
    assert not names_host(["*.example.eu"], "alice.hub.example.eu")
    assert not names_host(["hub.example.eu"], "*.hub.example.eu")


def test_an_internal_certificate_made_for_another_public_host_is_named(tmp_path):
    from certipy import Certipy

    certs = Certipy(store_dir=str(tmp_path))
    certs.create_ca("hub-ca")
    certs.create_signed_pair("hub-internal", "hub-ca", alt_names=["DNS:localhost", "DNS:hub.localhost"])
    assert internal_certificate_problems(tmp_path, "hub.localhost") == []
    (problem,) = internal_certificate_problems(tmp_path, "hub.example.eu")
    assert f"made for localhost, hub.localhost, not hub.example.eu; remove {tmp_path}" in problem
    assert internal_certificate_problems(tmp_path / "not-yet", "hub.example.eu") == []


def test_the_hub_certificate_names_where_the_jobs_reach_it(tmp_path):
    """The servers on compute nodes reach the hub at hub.connect_ip: its certificate names it, and
    one kept from before that changed is named at start-up."""
    from certipy import Certipy

    c = Config()
    update_front(
        c,
        site(
            internal_ssl=True,
            connect_ip="mn5-login",
            public_url="https://hub.example.eu/",
            state_dir=str(tmp_path / "not-yet"),
        ),
    )
    assert c.JupyterHub.trusted_alt_names == ["DNS:mn5-login", "DNS:hub.example.eu", "DNS:*.hub.example.eu"]
    c = Config()
    update_front(
        c, site(internal_ssl=True, connect_ip="10.77.0.1", user_subdomains=False, state_dir=str(tmp_path / "x"))
    )
    assert c.JupyterHub.trusted_alt_names == ["IP:10.77.0.1"]

    certs = Certipy(store_dir=str(tmp_path / "internal-ssl"))
    certs.create_ca("hub-ca")
    certs.create_signed_pair("hub-internal", "hub-ca", alt_names=["DNS:localhost", "IP:127.0.0.1", "IP:10.77.0.1"])
    assert internal_certificate_problems(tmp_path / "internal-ssl", "10.77.0.1", "hub.connect_ip") == []
    with pytest.raises(
        SiteConfigError, match="key 'hub.connect_ip': .* made for localhost, 127.0.0.1, 10.77.0.1, not mn5-login"
    ):
        update_front(
            Config(), site(internal_ssl=True, connect_ip="mn5-login", user_subdomains=False, state_dir=str(tmp_path))
        )


def test_the_hub_certificate_names_every_users_origin(tmp_path):
    """Issue 22, item 3: a stopped server's address (alice.hub.example.eu/user/alice/lab) falls
    through the proxy to the hub, which checked the hub's certificate against alice's host and
    answered 503 (ERR_TLS_CERT_ALTNAME_INVALID), with an error page whose way home stayed on
    alice's origin. A certificate made from these names passes a TLS handshake for her host."""
    from certipy import Certipy

    c = Config()
    c.JupyterHub.template_vars = {"announcement_home": "x"}  # update_hub's, first
    update_front(
        c,
        site(
            internal_ssl=True,
            connect_ip="10.77.0.1",
            public_url="https://hub.example.eu/",
            state_dir=str(tmp_path / "not-yet"),
        ),
    )
    assert c.JupyterHub.template_vars["announcement_home"] == "x"
    assert c.JupyterHub.template_vars["hub_url"] == "https://hub.example.eu/hub/"
    certs = Certipy(store_dir=str(tmp_path / "internal-ssl"))
    certs.create_ca("hub-ca")
    certs.create_signed_pair("hub-internal", "hub-ca", alt_names=c.JupyterHub.trusted_alt_names)
    store = tmp_path / "internal-ssl"
    assert handshake(store, "alice.hub.example.eu") == "ok"
    assert handshake(store, "hub.example.eu") == "ok"
    assert "match" in handshake(store, "alice.other.eu")  # what the proxy refused before
    # An internal certificate kept from before names no user's origin: named at start-up.
    old = Certipy(store_dir=str(tmp_path / "old" / "internal-ssl"))
    old.create_ca("hub-ca")
    old.create_signed_pair("hub-internal", "hub-ca", alt_names=["DNS:hub.example.eu", "IP:10.77.0.1"])
    with pytest.raises(SiteConfigError, match="key 'hub.user_subdomains': .* not user.hub.example.eu; remove"):
        update_front(
            Config(),
            site(
                internal_ssl=True,
                connect_ip="10.77.0.1",
                public_url="https://hub.example.eu/",
                state_dir=str(tmp_path / "old"),
            ),
        )


def handshake(store: Path, host: str) -> str:
    """A TLS handshake on loopback with the hub's internal certificate, checked as the proxy
    checks it (the CA, and ``host`` as the name): "ok", or why it failed."""
    import socket
    import ssl
    import threading

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(store / "hub-internal" / "hub-internal.crt", store / "hub-internal" / "hub-internal.key")
    client = ssl.create_default_context(cafile=str(store / "hub-ca" / "hub-ca.crt"))
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                server.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=accept)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname()) as raw, client.wrap_socket(raw, server_hostname=host):
                return "ok"
        except ssl.SSLCertVerificationError as e:
            return e.verify_message
        finally:
            thread.join(10)
