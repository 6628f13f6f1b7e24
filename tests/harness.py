"""A hub run as a subprocess with a test site file, and an admin client for its REST API.

Shared by the integration tests and the benchmarks (which run without pytest)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

REPO = Path(__file__).parents[1]
#: The users' stack (singleuser.venv: JupyterLab, the kernel, Dask, the job's side).
VENV = Path(os.environ.get("AIFACTORY_VENV", "/opt/aifactory/venv"))
#: The hub's install (jupyterhub, aifactory-site, aifactory-workshop) and root's helpers' Python;
#: the helpers are in its parent's libexec.
HUB_VENV = Path(os.environ.get("AIFACTORY_HUB_VENV", "/opt/aifactory/hub-venv"))
LIBEXEC = HUB_VENV.parent / "libexec"
CLUSTER = REPO / "cluster" / "minicluster.sh"
TEST_JOB_NAME = "aifw-test-jupyterlab"
HUB_USER = "aifactory-hub"
POLL_INTERVAL = 2


_system_getaddrinfo = socket.getaddrinfo


def _localhost_is_loopback(host, *args, **kwargs):
    """Names under .localhost are this machine (RFC 6761), as Chromium and curl resolve them:
    the tests reach hub.localhost and alice.hub.localhost without asking any DNS server."""
    if isinstance(host, str | bytes):
        name = host.decode() if isinstance(host, bytes) else host
        if name.rstrip(".").lower().endswith(".localhost"):
            host = "127.0.0.1"
    return _system_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _localhost_is_loopback


@dataclasses.dataclass(frozen=True)
class Node:
    """A machine of the mini cluster (cluster/nodes.txt)."""

    name: str
    address: str
    partition: str  # "-" for the login node, "controller" for the controller's host
    cores: int
    gpus: int
    features: tuple[str, ...] = ()  # what a job's --constraint picks

    @property
    def is_compute(self) -> bool:
        """A compute node (one of SLURM's nodes), not the login node or the controller's host."""
        return self.partition not in ("-", "controller")


def _count(text: str) -> int:
    return 0 if text == "-" else int(text)  # the login node's "-": none


def cluster_nodes() -> dict[str, Node]:
    """The mini cluster's machines, the login node first, as cluster/minicluster.sh makes them."""
    nodes = {}
    for line in (REPO / "cluster" / "nodes.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, address, partition, cores, _, gpus, features = line.split()
            chosen = () if features == "-" else tuple(features.split(","))
            nodes[name] = Node(name, address, partition, _count(cores), _count(gpus), chosen)
    return nodes


#: The login node: where the hub runs and where the jobs on compute nodes reach it.
LOGIN_NODE = next(n for n in cluster_nodes().values() if n.partition == "-")
#: The controller's host (slurmctld, slurmdbd, MariaDB): a machine of its own, not the hub's.
CONTROLLER = next(n for n in cluster_nodes().values() if n.partition == "controller")


def partition_nodes(partition: str) -> list[Node]:
    return [n for n in cluster_nodes().values() if n.partition == partition]


def on_node(node: str, *argv: str) -> list[str]:
    """The command line that runs ``argv`` on a compute node or the controller's host (its
    network, host name and view of the files)."""
    return ["bash", str(CLUSTER), "on-node", node, *argv]


def job_node(job_id: str) -> str:
    """The node a running job runs on."""
    return sh("squeue", "-h", "-j", job_id, "-o", "%N").strip()


T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.5, *, fail: bool = True) -> T:
    """Call ``condition`` every ``every`` seconds until it returns something truthy, and return
    that; after ``timeout`` seconds raise AssertionError naming ``what`` and the last value seen.

    The one polling loop of the tests. ``condition`` may raise to stop early (a process that
    died). ``fail=False``: return the last value instead of raising, for a wait that only
    gives time (what follows checks, or nothing does)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(every)
    if not value and fail:
        raise AssertionError(f"{what} (waited {timeout}s; last seen: {value!r})")
    return value


class HubError(RuntimeError):
    """The hub or a server in it did not do what was expected; the message says what."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


def queued_jobs(user: str | None = None) -> dict[str, dict[str, str]]:
    """The hub's test jobs in squeue: id -> state, uid, user, account, partition."""
    argv = ["squeue", "-h", "--name", TEST_JOB_NAME, "-o", "%i|%T|%U|%u|%a|%P"]
    if user:
        argv += ["-u", user]
    jobs = {}
    for line in sh(*argv).splitlines():
        job_id, state, uid, name, account, partition = line.split("|")
        jobs[job_id] = {"state": state, "uid": uid, "user": name, "account": account, "partition": partition}
    return jobs


@contextlib.contextmanager
def gpus_held(user: str, gpus: int, hours: int = 4, memory: str = "1G") -> Iterator[str]:
    """``gpus`` of the acc node and ``memory`` held by a job of ``user`` (another tenant's,
    submitted as them with sudo) for ``hours``, running until the block ends; yields its id."""
    job = sh(
        "sudo",
        "-u",
        user,
        "sbatch",
        "--parsable",
        "--job-name=aifw-test-gpu-holder",
        "--partition=acc",
        f"--gres=gpu:{gpus}",
        "--cpus-per-task=1",
        f"--mem={memory}",
        f"--time={hours:02d}:00:00",
        "--chdir=/tmp",
        "--output=/dev/null",
        "--wrap",
        "sleep 3600",
    ).strip()
    try:
        wait_for(
            lambda: sh("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING", 90, f"{user}'s GPU job running"
        )
        yield job
    finally:
        sh("scancel", job, check=False)


@dataclass
class HubProcess:
    """A running hub and an admin client for its REST API."""

    url: str
    token: str
    process: subprocess.Popen
    log: Path
    site_file: Path
    tokens: dict[str, str] = field(default_factory=dict)
    user_subdomains: bool = True
    proxy: subprocess.Popen | None = None  # the proxy on its own (hub.proxy_token_file); None: the hub's child
    verify: str | bool = True  # requests' verify: the CA file of an https front with its own CA
    chromium_args: tuple[str, ...] = ()  # what Chromium needs to trust that front (its key's pin)

    def user_url(self, name: str) -> str:
        """Where the user's server is: on the user's own origin (hub.user_subdomains), or
        under the hub's."""
        if not self.user_subdomains:
            return f"{self.url}/user/{name}/"
        scheme, host = self.url.split("://", 1)
        return f"{scheme}://{name}.{host}/user/{name}/"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        kwargs.setdefault("timeout", 60)
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, verify=self.verify, **kwargs)

    def ensure_user(self, name: str) -> None:
        if self.api("GET", f"/users/{name}").status_code == 404:
            r = self.api("POST", f"/users/{name}")
            if r.status_code not in (201, 409):  # 409: created meanwhile by a concurrent call
                r.raise_for_status()

    def user_token(self, name: str) -> str:
        if name not in self.tokens:
            self.ensure_user(name)
            r = self.api("POST", f"/users/{name}/tokens", json={"note": "integration test", "expires_in": 3600})
            r.raise_for_status()
            self.tokens[name] = r.json()["token"]
        return self.tokens[name]

    def server(self, name: str, server: str = "") -> dict | None:
        return self.api("GET", f"/users/{name}").json()["servers"].get(server)

    @staticmethod
    def server_path(name: str, server: str = "") -> str:
        return f"/users/{name}/servers/{server}" if server else f"/users/{name}/server"

    def start(self, name: str, options: dict | None = None, server: str = "") -> requests.Response:
        self.ensure_user(name)
        return self.api("POST", self.server_path(name, server), json={"user_options": options or {}})

    def start_ready(self, name: str, options: dict | None = None) -> float:
        """Start the user's server and wait until it is ready; seconds from the API call."""
        t0 = time.monotonic()
        r = self.start(name, options)
        if r.status_code not in (201, 202):
            raise HubError(f"start of {name} refused: {r.status_code} {r.text}")
        self.wait_ready(name)
        return time.monotonic() - t0

    def wait_ready(self, name: str, timeout: float = 120) -> float:
        """Seconds until the server is ready in the hub; fails with the hub's last message."""
        t0 = time.monotonic()

        def ready() -> bool:
            server = self.server(name)
            if server and server["ready"]:
                return True
            if server is None and (failure := self.last_failure(name)):
                raise HubError(f"spawn of {name} failed: {failure}")
            return False

        if not wait_for(ready, timeout, f"the server of {name} ready", every=0.25, fail=False):
            raise HubError(f"server of {name} not ready after {timeout}s; hub log: {self.log}")
        return time.monotonic() - t0

    def last_failure(self, name: str, server: str = "") -> str:
        r = self.api("GET", f"{self.server_path(name, server)}/progress", stream=True, timeout=5)
        if r.status_code != 200:
            return ""
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data:") and '"failed": true' in line:
                return line
        return ""

    def stop(self, name: str, server: str = "") -> None:
        r = self.api("DELETE", self.server_path(name, server))
        if r.status_code not in (202, 204, 400, 404):
            raise HubError(f"stopping {name}/{server}: {r.status_code} {r.text}")
        wait_for(lambda: self.server(name, server) is None, 60, f"{name}/{server} gone", every=0.25, fail=False)

    def slurm_commands(self) -> dict[str, float]:
        """SLURM commands the hub has run, by name, from its Prometheus metrics."""
        text = self.api("GET", "/metrics").text
        found = re.findall(r'^aifactory_slurm_commands_total\{command="(\w+)"\} ([0-9.e+]+)$', text, re.M)
        return {command: float(value) for command, value in found}

    def test_only_calls(self) -> float:
        """``sbatch --test-only`` runs of the hub so far (its own counter at /metrics)."""
        text = self.api("GET", "/metrics").text
        found = re.search(r"^aifactory_slurm_test_only_total ([0-9.e+]+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    def kill_and_restart(self, between: Callable[[], None] = lambda: None) -> None:
        """kill -9 the hub and its proxy (as a crash would), run ``between``, start it again."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        between()
        self.process = run_hub(self.site_file, self.log)
        wait_healthy(self.url, self.process, self.log, verify=self.verify)

    def restart(self) -> None:
        """Stop the hub gracefully (SIGTERM, as `make hub-stop` and systemd do), start it again."""
        self.process.terminate()
        self.process.wait(30)
        self.process = run_hub(self.site_file, self.log)
        wait_healthy(self.url, self.process, self.log, verify=self.verify)

    def shutdown(self) -> None:
        """Stop every server (their jobs with them), then the hub and its proxy; cancel any test job left.

        The hub process ends even when stopping a server fails (a failing test's hub)."""
        try:
            for user in self.api("GET", "/users").json():
                for server in user["servers"]:
                    self.stop(user["name"], server)
        except (HubError, requests.RequestException) as e:
            print(f"shutdown: could not stop every server: {e}")
        for process in (self.process, self.proxy):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["scancel", "--name", TEST_JOB_NAME], check=False)
        shutil.rmtree(self.site_file.parent, ignore_errors=True)

    def login(self, name: str, password: str | None = None) -> requests.Session:
        """A browser-like session logged in through the form (PAM); the demo password by default."""
        password = demo_password(name) if password is None else password
        session = requests.Session()
        session.verify = self.verify
        # Per request too: requests lets $REQUESTS_CA_BUNDLE override a session's own verify.
        page = session.get(f"{self.url}/hub/login", timeout=30, verify=self.verify)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        form = {"username": name, "password": password, "_xsrf": xsrf.group(1) if xsrf else ""}
        r = session.post(f"{self.url}/hub/login?next=/hub/home", data=form, timeout=60, verify=self.verify)
        if r.status_code != 200 or "/hub/home" not in r.url:
            raise HubError(f"login of {name} failed: {r.status_code} {r.url}")
        return session

    def get(self, path: str, token: str) -> requests.Response:
        """GET a path on the proxy with a token: /user/NAME/... at that user's server, the rest
        at the hub."""
        user = re.match(r"/user/([^/]+)/(.*)", path)
        url = self.user_url(user.group(1)) + user.group(2) if user else f"{self.url}{path}"
        return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30, verify=self.verify)

    def through_proxy(self, name: str, token: str, path: str = "api/status") -> requests.Response:
        """GET a path of the user's server through the proxy, with a token."""
        url = self.user_url(name) + path
        return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30, verify=self.verify)

    def through_proxy_post(self, name: str, token: str, path: str, body: dict) -> requests.Response:
        url = self.user_url(name) + path
        r = requests.post(url, json=body, headers={"Authorization": f"token {token}"}, timeout=30, verify=self.verify)
        r.raise_for_status()
        return r


#: The form settings of a deployed site, for benchmarks (tests shorten the discovery cache).
DEPLOYED_FORM = {"discovery_cache": 60}


def demo_password(user: str) -> str:
    for line in (REPO / "cluster" / "users.txt").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == user:
            return parts[1]
    raise LookupError(user)


def write_site(
    directory: Path, token_file: Path, hub: dict | None = None, slurm: dict | None = None, **sections: dict
) -> Path:
    port = free_port()
    site = {
        "hub": {
            "port": port,
            # Each user's server on its own origin, as the site defaults have it.
            "public_url": f"http://hub.localhost:{port}/",
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "state_dir": str(directory / "state"),
            # The jobs on compute nodes reach the hub across the cluster network.
            "hub_ip": LOGIN_NODE.name,
            "connect_ip": LOGIN_NODE.name,
            "admin_services": [{"name": "integration-tests", "token_file": str(token_file)}],
            "admin_users": ["admin"],  # the demo's: in aifactory-admins, whom the hub runs nothing as
            "allowed_groups": ["aifactory-users", "aifactory-admins"],
            "poll_interval": POLL_INTERVAL,
            "start_timeout": 120,
            # The hub starts its proxy as its child unless a test runs it on its own (launch(own_proxy=True)).
            "proxy_token_file": "",
            **(hub or {}),
        },
        "slurm": {"job_name": TEST_JOB_NAME, "startup_poll_interval": 0.5, "memory": "1G", **(slurm or {})},
        # Tests change reservations and expect the form to see it within a second.
        "form": {"discovery_cache": 1},
        # No package index but what a test names (traffic stays on this machine).
        "environments": {"index_url": ""},
        **sections,
    }
    path = directory / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    return path


#: How the tests run what the hub's account runs.
AS_HUB = ["setpriv", f"--reuid={HUB_USER}", f"--regid={HUB_USER}", "--init-groups"]


def run_hub(
    site_file: Path, log: Path, config: Path = REPO / "jupyterhub_config.py", config_lines: str = ""
) -> subprocess.Popen:
    """The hub as deployed: unprivileged, as HUB_USER, from a copy of its config it can read.

    ``config_lines`` go above the config's own, where a site adds its traitlets settings."""
    copy = site_file.parent / "jupyterhub_config.py"
    copy.write_text(config_lines + config.read_text())
    shutil.chown(copy, HUB_USER, HUB_USER)
    env = {**os.environ, "AIFACTORY_SITE_CONFIG": str(site_file), "HOME": str(site_file.parent)}
    return subprocess.Popen(
        [*AS_HUB, str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(copy)],
        cwd=site_file.parent,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(
    url: str, process: subprocess.Popen, log: Path, timeout: float = 60, verify: str | bool = True
) -> None:

    def healthy() -> bool:
        if process.poll() is not None:
            raise HubError(f"hub exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return requests.get(f"{url}/hub/health", timeout=2, verify=verify).status_code == 200
        except requests.ConnectionError:
            return False

    if not wait_for(healthy, timeout, "the hub's /hub/health", every=0.25, fail=False):
        raise HubError(f"hub did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


DEFAULT_CONFIG = REPO / "jupyterhub_config.py"


def run_proxy(site_file: Path, log: Path) -> subprocess.Popen:
    """The proxy on its own, as its unit runs it (``aifactory-site proxy``, as HUB_USER), once its
    API listens; raises HubError with its output if it ends first."""
    env = {**os.environ, "AIFACTORY_SITE_CONFIG": str(site_file), "HOME": str(site_file.parent)}
    process = subprocess.Popen(
        [*AS_HUB, str(HUB_VENV / "bin" / "aifactory-site"), "proxy", str(site_file)],
        cwd=site_file.parent,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    port = yaml.safe_load(site_file.read_text())["hub"]["proxy_api_port"]

    def listens() -> bool:
        if process.poll() is not None:
            raise HubError(f"the proxy exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listens, 30, "the proxy's API listens", every=0.1)
    return process


def launch(
    hub: dict | None = None,
    slurm: dict | None = None,
    config: Path = DEFAULT_CONFIG,
    config_lines: str = "",
    verify: str | bool = True,
    own_proxy: bool = False,
    **sections: dict,
) -> HubProcess:
    """A hub on free ports with an admin service token, answering on /hub/health.

    Its directory (state, site file, token, log) is the hub user's own, under /var/tmp.
    ``verify``: the CA file that signed the site's https certificate (hub.ssl_cert).
    ``own_proxy``: the proxy runs on its own (hub.proxy_token_file, as a site's unit runs it),
    started first, its output in proxy.log; else the hub starts it as its child."""
    directory = Path(tempfile.mkdtemp(prefix="aifw-hub-", dir="/var/tmp"))
    token_file = directory / "admin.token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    if own_proxy:
        proxy_token = directory / "proxy.token"
        proxy_token.write_text(secrets.token_hex(32))
        proxy_token.chmod(0o600)
        hub = {**(hub or {}), "proxy_token_file": str(proxy_token)}
    site_file = write_site(directory, token_file, hub, slurm, **sections)
    subprocess.run(["chown", "-R", f"{HUB_USER}:{HUB_USER}", str(directory)], check=True)
    log = directory / "hub.log"
    proxy = run_proxy(site_file, directory / "proxy.log") if own_proxy else None
    process = run_hub(site_file, log, config, config_lines)
    written = yaml.safe_load(site_file.read_text())["hub"]
    url = written["public_url"].rstrip("/") or f"http://127.0.0.1:{written['port']}"
    try:
        wait_healthy(url, process, log, verify=verify)
    except HubError:
        # A hub that failed to start may leave its proxy running: end its whole process group.
        for started in [p for p in (process, proxy) if p is not None]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.pid, signal.SIGKILL)
        raise
    subdomains = written.get("user_subdomains", True)
    return HubProcess(
        url, token_file.read_text(), process, log, site_file, user_subdomains=subdomains, verify=verify, proxy=proxy
    )


MAKE_CERTS = REPO / "cluster" / "tls" / "make-demo-certs.sh"


@contextlib.contextmanager
def demo_certificates() -> Iterator[Path]:
    """The demo's CA and wildcard certificate for hub.localhost, made by the demo's own script
    into a folder of their own, removed after."""
    directory = Path(tempfile.mkdtemp(prefix="aifw-tls-", dir="/var/tmp"))
    made = ["bash", str(MAKE_CERTS), str(directory), "hub.localhost", HUB_USER]
    subprocess.run(made, check=True, capture_output=True)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def spki_pin(cert_file: Path) -> str:
    """Chromium's pin of a certificate's public key (--ignore-certificate-errors-spki-list)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def launch_demo_setup(demo_certs: Path, hub: dict | None = None, **sections: dict) -> HubProcess:
    """A hub as `make demo` runs it (config/site.yaml): the https front with the demo's CA,
    each user's server on its own origin, and internal TLS to the servers on compute nodes.
    Chromium trusts its certificate through ``chromium_args``. ``hub``: more of the hub's
    section (its ``db_url``: PostgreSQL, as the demo's)."""
    port = free_port()
    front = {
        "port": port,
        "public_url": f"https://hub.localhost:{port}/",
        "ssl_cert": str(demo_certs / "hub.crt"),
        "ssl_key": str(demo_certs / "hub.key"),
        "internal_ssl": True,
        **(hub or {}),
    }
    launched = launch(hub=front, verify=str(demo_certs / "ca.crt"), **sections)
    launched.chromium_args = (f"--ignore-certificate-errors-spki-list={spki_pin(demo_certs / 'hub.crt')}",)
    return launched


#: The mini cluster's PostgreSQL (cluster/minicluster.sh): a Unix socket only, peer authentication.
PG_SOCKET_DIR = "/run/aifactory-postgres"


def _psql(sql: str) -> str:
    pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
    command = [
        "runuser",
        "-u",
        "postgres",
        "--",
        str(pg_bin / "psql"),
        "-X",
        "-q",
        "-h",
        PG_SOCKET_DIR,
        "-d",
        "postgres",
        "-tA",
        "-c",
        sql,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@contextlib.contextmanager
def postgres_database():
    """A fresh database of the hub's role on the cluster's PostgreSQL; its URL, dropped after."""
    name = f"aifw_test_{secrets.token_hex(4)}"
    _psql(f'CREATE DATABASE {name} OWNER "{HUB_USER}"')
    try:
        yield f"postgresql://{HUB_USER}@/{name}?host={PG_SOCKET_DIR}"
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
