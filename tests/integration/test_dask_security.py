"""Issue 21, hole 1: another tenant cannot use alice's Dask cluster. Alice starts the site's
``SLURMCluster()`` in her own kernel, as users do; bob, from a process of his own on another
compute node (and on hers), tries what a hostile colleague would: his ``Client`` without
credentials, his ``Client`` with TLS credentials of his own making, his own worker joining her
scheduler, and ``curl`` at her dashboard's port and at her worker's. Each is refused; alice's own
client works and her dashboard opens through her server, for her only."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from .conftest import LOGIN_NODE, REPO, VENV, HubProcess, cluster_nodes, execute_in_kernel, job_node

ALICE_CLUSTER = """
import getpass, os
print("JOB", os.environ["SLURM_JOB_ID"])
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=180)
print("SCHEDULER", cluster.scheduler_address)
print("DASHBOARD", client.scheduler_info()["services"]["dashboard"])
print("LINK", client.dashboard_link)
(worker,) = client.scheduler_info()["workers"].values()
print("WORKER_DASHBOARD", worker["host"], worker["services"]["dashboard"])
print("OWNER", client.run_on_scheduler(getpass.getuser))
def where(dask_scheduler=None, dask_worker=None):  # the Unix socket its dashboard answers on
    return getattr((dask_scheduler or dask_worker).http_server, "socket_path", "")
print("SOCKETS", client.run_on_scheduler(where), *client.run(where).values())
"""

ALICE_CLIENT = """
import getpass
from dask.distributed import Client
client = Client({scheduler!r}, timeout=10)
"""

WORKERS = """
print("WORKERS", len(client.scheduler_info()["workers"]), *sorted(set(client.run(getpass.getuser).values())))
"""

#: Bob's Client at alice's scheduler: plain, then with TLS credentials he made himself.
BOB_CLIENT = """
import getpass, sys
from distributed import Client
from distributed.security import Security
host_port = sys.argv[1].split("://", 1)[1]
for label, address, security in [("plain", "tcp://" + host_port, None),
                                  ("own-tls", "tls://" + host_port, Security.temporary())]:
    try:
        with Client(address, security=security, timeout=10) as c:
            print("BOB", label, "ANSWERED", c.run_on_scheduler(getpass.getuser), flush=True)
    except Exception as e:
        print("BOB", label, "REFUSED", type(e).__name__, flush=True)
"""


def printed(output: str, label: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line.startswith(label + " ")]
    return line.split()[1:]


def as_bob(node: str, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """A process of bob's own on a compute node, or on the login node (his view of the network)."""
    on_node = ["bash", "cluster/minicluster.sh", "on-node", node] if node != LOGIN_NODE.name else []
    command = [*on_node, "runuser", "-u", "bob", "--", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))


def bob_reads_socket(node: str, path: str) -> str:
    """The HTTP status bob gets from a Unix socket on ``node`` ("000": he could not even open it)."""
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--unix-socket", path]
    return as_bob(node, *curl, "http://localhost/health").stdout.strip()


def other_gpp_node(node: str) -> str:
    return next(n for n, info in cluster_nodes().items() if info.partition == "gpp" and n != node)


@pytest.fixture
def alice_cluster(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    output = execute_in_kernel(hub, "alice", token, ALICE_CLUSTER)
    return hub, token, output, job_node(printed(output, "JOB")[0])  # (her JupyterLab's job)


@pytest.mark.slow
def test_bob_cannot_use_alices_dask_cluster(alice_cluster):
    hub, token, output, alice_node = alice_cluster
    other = other_gpp_node(alice_node)
    scheduler = printed(output, "SCHEDULER")[0]
    assert printed(output, "OWNER") == ["alice"], output  # her own client works

    # Bob's Client, from his process on another node and on hers: refused, never answered.
    for node in (other, alice_node):
        bob = as_bob(node, f"{VENV}/bin/python", "-c", BOB_CLIENT, scheduler)
        assert "ANSWERED" not in bob.stdout, f"bob used alice's scheduler from {node}: {bob.stdout}"
        assert bob.stdout.count("REFUSED") == 2, bob.stdout + bob.stderr

    # Bob's own worker, started against her scheduler, is refused: she still has her one worker.
    worker = as_bob(
        other,
        f"{VENV}/bin/python",
        "-m",
        "distributed.cli.dask_worker",
        scheduler,
        "--death-timeout",
        "15",
        "--nthreads",
        "1",
        "--no-dashboard",
        timeout=120,
    )
    assert worker.returncode != 0, worker.stderr[-2000:]
    # (A second kernel of hers: the cluster's client lives in the first.)
    after = execute_in_kernel(hub, "alice", token, ALICE_CLIENT.format(scheduler=scheduler) + WORKERS)
    assert printed(after, "WORKERS") == ["1", "alice"], after


#: Bob's scan of a node (issue 34, hole 3): every TCP port that listens in the node's network,
#: loopback included (which every job on the node and every user of the login node share),
#: asked what a Dask dashboard answers; a port that answers like one is printed as DASK.
BOB_SCAN = """
import urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ANY = {"00000000": "127.0.0.1", "00000000000000000000000000000000": "::1"}

def listeners():
    found = set()
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            host, port = fields[1].split(":")
            if fields[3] != "0A":  # LISTEN
                continue
            if host in ANY:
                address = ANY[host]
            elif size == 8:
                address = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                continue  # (the mini cluster's nodes have IPv4 addresses; ::1 is in ANY)
            found.add((address, int(port, 16)))
    return sorted(found)

ports = listeners()
for address, port in ports:
    host = f"[{address}]" if ":" in address else address
    for path in ("/json/identity.json", "/metrics", "/status"):
        try:
            with opener.open(f"http://{host}:{port}{path}", timeout=3) as r:
                body = r.read(1 << 20)
        except Exception:
            continue
        if any(mark in body for mark in (b'"Scheduler"', b'"Worker"', b"dask_", b"Dask")):
            print("DASK", address, port, path, flush=True)
print("SCANNED", len(ports), flush=True)
"""


def dask_ports_bob_reaches(node: str) -> list[str]:
    """The Dask dashboards bob finds by asking every TCP port of a node (there, in his own process)."""
    scan = as_bob(node, f"{VENV}/bin/python", "-c", BOB_SCAN, timeout=300)
    assert "SCANNED" in scan.stdout, scan.stdout + scan.stderr  # the scan itself ran
    return [line for line in scan.stdout.splitlines() if line.startswith("DASK ")]


def node_of(address: str) -> str:
    return next(name for name, info in cluster_nodes().items() if info.address == address)


@pytest.mark.slow
def test_bob_reaches_no_dashboard_of_alices_on_any_port_of_her_nodes(alice_cluster):
    """Issue 34, hole 3: dashboards on 127.0.0.1 answered every process of the node (bob read her
    scheduler's /json/identity.json and her worker's /metrics from a job of his there). Now they
    answer on Unix sockets in her private folders: bob, on her JupyterLab's node, on her worker's
    node and on another, finds no Dask dashboard on any TCP port."""
    hub, token, output, alice_node = alice_cluster
    # Her dashboard opens through her own server, for her and no one else, and her Dask panel
    # (the session's report) finds it by itself, with its plots.
    link = printed(output, "LINK")[0]
    assert link.startswith("/user/alice/aifactory/dask/") and link.endswith("/status"), link
    page = hub.get(link, token)
    assert page.status_code == 200, page.text[-2000:]
    assert hub.get(link, hub.user_token("bob")).status_code == 403
    session = hub.through_proxy("alice", token, "aifactory/session").json()
    assert session["dashboard"] == link, session
    plots = hub.get(link.removesuffix("status") + "individual-plots.json", token)
    assert plots.status_code == 200 and "Individual Task Stream" in plots.json(), plots.text[:500]
    task_stream = hub.get(link.removesuffix("status") + "individual-task-stream", token)
    assert task_stream.status_code == 200 and "bokeh" in task_stream.text.lower(), task_stream.text[:500]

    # And bob, whichever node he asks from:
    worker_node = node_of(printed(output, "WORKER_DASHBOARD")[0])
    for node in dict.fromkeys((alice_node, worker_node, other_gpp_node(alice_node))):
        assert dask_ports_bob_reaches(node) == [], f"bob read alice's Dask dashboards on {node}"
    for path in printed(output, "SOCKETS"):  # and her sockets are hers: not even opened for him
        assert bob_reads_socket(alice_node, path) == "000", f"bob read {path}"


#: The example notebooks that use Dask (the site's, as this release installed them: a user's
#: ~/examples is copied once and kept), run in alice's JupyterLab job as from its terminal:
#: with the job's config, where Dask refuses any connection that is not TLS.
EXAMPLES_IN_THE_JOB = """
import json, os, shutil, subprocess, sys, tempfile
print("ENCRYPTION", os.environ["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"])
work = tempfile.mkdtemp()
for name in ("01_climate_climatology.ipynb", "03_dask_scaling.ipynb"):
    shutil.copy(os.path.join(sys.prefix, "share", "aifactory", "examples", name), work)
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "jupyter"), "nbconvert", "--to", "notebook",
                          "--execute", "--inplace", "--ExecutePreprocessor.kernel_name=aifactory", name],
                         cwd=work, capture_output=True, text=True, timeout=600)
    done = open(os.path.join(work, name)).read()
    ran = all(c.get("execution_count") for c in json.loads(done)["cells"] if c["cell_type"] == "code")
    print("NOTEBOOK", name, run.returncode, ran, "tls://" in done)
    if run.returncode:
        print(run.stderr[-3000:])
"""


@pytest.mark.slow
def test_the_dask_example_notebooks_run_in_the_secured_job(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    output = execute_in_kernel(hub, "alice", hub.user_token("alice"), EXAMPLES_IN_THE_JOB, timeout=900)
    assert printed(output, "ENCRYPTION") == ["True"], output
    lines = [line.split()[1:] for line in output.splitlines() if line.startswith("NOTEBOOK ")]
    assert [line[0] for line in lines] == ["01_climate_climatology.ipynb", "03_dask_scaling.ipynb"], output
    assert all(line[1:3] == ["0", "True"] for line in lines), output


#: alice's cluster from a login shell on the login node, as HPC users start one; it stays up
#: until its standard input closes.
LOGIN_CLUSTER = """
import getpass, json, subprocess, sys
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
cluster = SLURMCluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=120)
print("SCHEDULER", cluster.scheduler_address, flush=True)
print("WORKERS", len(client.scheduler_info()["workers"]), client.run_on_scheduler(getpass.getuser), flush=True)
socket_path = client.run_on_scheduler(lambda dask_scheduler: getattr(dask_scheduler.http_server, "socket_path", ""))
own = subprocess.run(["curl", "-s", "--max-time", "10", "--unix-socket", socket_path, "http://localhost/json/identity.json"],
                     capture_output=True, text=True)
print("OWN", json.loads(own.stdout or "{}").get("type"), flush=True)
print("SOCKET", socket_path, flush=True)
sys.stdin.read()
cluster.close()
"""


@pytest.mark.slow
def test_a_cluster_started_on_the_login_node_gets_its_workers_and_only_its_owner_uses_it():
    """Issue 23, item 5: from a login shell, SLURMCluster()'s scheduler advertised the login node's
    outward address (192.0.2.2): workers on compute nodes never reached it (0/1 workers after
    90 s), and it spoke plain TCP to any tenant. Now (/etc/profile.d/aifactory-dask.sh) it
    listens where compute nodes reach the controller, and speaks TLS with alice's own credentials."""
    login_shell = ["runuser", "-l", "alice", "-c", f"cd /tmp && {VENV}/bin/python -c {shlex.quote(LOGIN_CLUSTER)}"]
    alice = subprocess.Popen(
        login_shell, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        for line in alice.stdout:
            lines.append(line)
            if line.startswith("SOCKET "):
                break
        output = "".join(lines)
        assert "WORKERS 1 alice" in output, output[-3000:]
        address = printed(output, "SCHEDULER")[0]
        assert address.startswith("tls://10.77.0."), address
        for node in (LOGIN_NODE.name, other_gpp_node(LOGIN_NODE.name)):
            tried = as_bob(node, f"{VENV}/bin/python", "-c", BOB_CLIENT, address)
            assert "ANSWERED" not in tried.stdout and tried.stdout.count("REFUSED") == 2, tried.stdout + tried.stderr
        # Issue 34, hole 3: her dashboard answered every user of the login node on 127.0.0.1:8787.
        # Now it answers on a Unix socket in a private folder of hers: she reads it, bob finds no
        # Dask dashboard on any port of the login node, nor opens her socket.
        assert dask_ports_bob_reaches(LOGIN_NODE.name) == [], "bob read alice's dashboard on the login node"
        assert printed(output, "OWN") == ["Scheduler"], output[-3000:]
        path = printed(output, "SOCKET")[0]
        assert bob_reads_socket(LOGIN_NODE.name, path) == "000", f"bob read alice's dashboard socket {path}"
    finally:
        alice.stdin.close()
        try:
            alice.wait(60)
        except subprocess.TimeoutExpired:
            alice.kill()
        subprocess.run(["scancel", "-u", "alice", "--name", "aifw-dask-worker"], check=False)
