"""internal_ssl: proxy, hub and the server on the compute node speak mutual TLS, and the
server's key reaches the job only inside its batch script, then a folder only its user reads."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from cryptography import x509

from aifactory_workbench.hub.tls import certificate_names
from tests.harness import demo_password

from .conftest import (
    LOGIN_NODE,
    VENV,
    HubProcess,
    cluster_nodes,
    job_node,
    launch,
    on_node,
    queued_jobs,
    sh,
    wait_for,
)


@pytest.fixture(scope="module")
def tls_hub() -> Iterator[HubProcess]:
    hub = launch(hub={"internal_ssl": True})
    yield hub
    hub.shutdown()


def speaks_plain_http(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5) as s:
            s.sendall(b"GET /api HTTP/1.0\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except ConnectionResetError:
        return False


@pytest.mark.slow
def next_job_ids(count: int) -> list[int]:
    known = sh("sacct", "-a", "-X", "-n", "-P", "-o", "JobID", "-S", "now-7days").split()
    last = max((int(j) for j in known if j.isdigit()), default=0)
    return list(range(last + 1, last + 1 + count))


@pytest.fixture
def planted() -> Iterator[list[Path]]:
    """bob pre-creates the folders the key used to go to (/tmp/aifw-certs-<next job ids>), each
    with a keyfile.pem he can read (issue 11, hole 2)."""
    folders = [Path(f"/tmp/aifw-certs-{job_id}") for job_id in next_job_ids(30)]
    for folder in folders:
        sh(
            "sudo",
            "-u",
            "bob",
            "sh",
            "-c",
            f"mkdir -m 777 {folder} && touch {folder}/keyfile.pem && chmod 666 {folder}/keyfile.pem",
        )
    yield folders
    for folder in folders:
        sh("rm", "-rf", str(folder))


def test_a_server_on_a_compute_node_is_reached_over_mutual_tls_only(tls_hub: HubProcess, planted: list[Path]):
    hub = tls_hub
    hub.start_ready("alice")
    (job_id,) = queued_jobs("alice")
    try:
        assert hub.through_proxy("alice", hub.user_token("alice")).status_code == 200
        state = hub.server("alice")["state"]
        port = state["port"]
        node = cluster_nodes()[job_node(job_id)]  # reached across the cluster network
        assert not speaks_plain_http(node.address, port), "the server answers plain HTTP"
        with pytest.raises(ssl.SSLError):  # TLS, but only with a client certificate of the hub's CA
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with socket.create_connection((node.address, port), timeout=5) as raw, context.wrap_socket(raw) as tls:
                tls.sendall(b"GET /api HTTP/1.0\r\n\r\n")
                tls.recv(16)

        assert all((p / "keyfile.pem").read_text() == "" for p in planted), "a key went to bob's folder"
        (private,) = Path("/tmp").glob(f"aifw-job-{job_id}.*")
        info = private.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (int(sh("id", "-u", "alice")), 0o700)
        folder = private / "certs"
        assert sorted(os.listdir(folder)) == ["cafile.pem", "certfile.pem", "keyfile.pem"]
        # The certificate names the node the server runs on, and no node outside its partition.
        names = certificate_names(x509.load_pem_x509_certificate((folder / "certfile.pem").read_bytes()))
        assert {node.name, node.address} <= set(names), names
        assert not {n.name for n in cluster_nodes().values() if n.partition != node.partition} & set(names), names
        assert stat.S_IMODE((folder / "keyfile.pem").stat().st_mode) == 0o600
        assert "PRIVATE KEY" not in sh("scontrol", "show", "job", job_id)  # argv, env and fields: no key
        hub_copies = Path(hub.site_file.parent / "state" / "internal-ssl")
        assert not [p for p in hub_copies.rglob("*.key") if "user-alice" in str(p)], "the hub kept the server's key"
    finally:
        hub.stop("alice")
    wait_for(lambda: not private.exists(), 30, "the job's private folder outlived it")


def proxy_routes_api(hub: HubProcess) -> tuple[str, dict]:
    """The proxy's route API as the hub calls it: its token, the hub's client certificate."""
    api_port = yaml.safe_load(hub.site_file.read_text())["hub"]["proxy_api_port"]
    (pid,) = sh("pgrep", "-f", f"configurable-http-proxy .*--api-port {api_port} ").split()
    environ = dict(v.split(b"=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in v)
    certs = hub.site_file.parent / "state" / "internal-ssl"
    return f"https://127.0.0.1:{api_port}/api/routes", {
        "headers": {"Authorization": f"token {environ[b'CONFIGPROXY_AUTH_TOKEN'].decode()}"},
        "cert": (str(certs / "hub-internal" / "hub-internal.crt"), str(certs / "hub-internal" / "hub-internal.key")),
        "verify": str(certs / "hub-ca_trust.crt"),  # what the hub trusts
        "timeout": 30,
    }


@pytest.mark.slow
def test_the_proxy_forwards_a_users_address_to_no_server_but_theirs(tls_hub: HubProcess):
    """Issue 11, hole 3: were alice's route to lead to bob's server (bob took her port after her
    server died, before the hub noticed), the proxy refuses to forward: every server's
    certificate comes from the same CA, but only alice's names alice's own host."""
    hub = tls_hub
    hub.start_ready("alice")
    hub.start_ready("bob")
    try:
        alice = hub.user_token("alice")
        assert hub.through_proxy("alice", alice).status_code == 200
        routes, as_hub = proxy_routes_api(hub)
        host = urlsplit(hub.user_url("alice")).hostname
        (bob_job,) = queued_jobs("bob")
        bob_server = f"https://{cluster_nodes()[job_node(bob_job)].address}:{hub.server('bob')['state']['port']}"
        assert requests.post(f"{routes}/{host}/user/alice", json={"target": bob_server}, **as_hub).status_code == 201
        assert hub.through_proxy("alice", alice).status_code == 503
        assert f"Host: {host}. is not in the cert's altnames" in hub.log.read_text()
        assert hub.through_proxy("bob", hub.user_token("bob")).status_code == 200
    finally:
        hub.stop("alice")
        hub.stop("bob")


FORGE_LOGIN = """
import re, sys, requests, urllib3
urllib3.disable_warnings()
hub, user, password, certs = sys.argv[1:5]
s = requests.Session()
if certs != "-":
    s.cert = (f"{certs}/certfile.pem", f"{certs}/keyfile.pem")
s.trust_env = False  # and the attacker need not check the hub's certificate: verify=False below
s.headers["X-Forwarded-For"] = "198.51.100.66"  # a documentation address: only ever a header's text
xsrf = re.search(r'name="_xsrf" value="([^"]+)"', s.get(f"{hub}/hub/login", timeout=30, verify=False).text).group(1)
r = s.post(f"{hub}/hub/login?next=/hub/home", data={"username": user, "password": password, "_xsrf": xsrf}, timeout=60,
           verify=False)
print(r.status_code, r.url)
"""


@pytest.mark.slow
def test_a_server_certificate_cannot_forge_the_audits_client_address(tls_hub: HubProcess):
    """Issue 21, hole 16: with internal_ssl a user's own server certificate is a client
    certificate the hub accepts.  Alice's code on her compute node connects to the hub directly,
    past the proxy, with an X-Forwarded-For of its choosing: the audit must record her node."""
    hub = tls_hub
    hub.start_ready("alice")
    job_id = hub.server("alice")["state"]["job_id"]  # batchspawner's
    try:
        node = cluster_nodes()[job_node(job_id)]
        (certs,) = Path("/tmp").glob(f"aifw-job-{job_id}.*/certs")
        written = yaml.safe_load(hub.site_file.read_text())["hub"]
        direct = f"https://{written['hub_ip']}:{written['hub_port']}"
        forge = on_node(
            node.name,
            "runuser",
            "-u",
            "alice",
            "--",
            f"{VENV}/bin/python",
            "-c",
            FORGE_LOGIN,
            direct,
            "alice",
            demo_password("alice"),
            str(certs),
        )
        said = subprocess.run(forge, capture_output=True, text=True)
        assert said.stdout.startswith("200 ") and "/hub/home" in said.stdout, said.stderr[-2000:]
        log = hub.api("GET", "/aifactory/audit?n=50").json()["entries"]
        login = [e for e in log if e["event"] == "login" and e["user"] == "alice"][-1]
        assert login["ip"] == node.address, login
        # Through the proxy (the login node's public port), the address is still the one the proxy saw.
        through = f"http://{LOGIN_NODE.address}:{written['port']}"
        forge[forge.index(direct)], forge[-1] = through, "-"
        said = subprocess.run(forge, capture_output=True, text=True)
        assert said.stdout.startswith("200 "), said.stderr[-2000:]
        log = hub.api("GET", "/aifactory/audit?n=50").json()["entries"]
        login = [e for e in log if e["event"] == "login" and e["user"] == "alice"][-1]
        assert login["ip"] == node.address, login
    finally:
        hub.stop("alice")
