"""Issue 21, hole 1, without daemons: the Dask config a JupyterLab job gives its kernels (its own
TLS credentials, job/launcher.py) and the site's (root/dask_config.py, the lab/dashboard.py
preload). A client without the job's credentials, or with credentials of its own, is refused;
the job's own client works; dashboards answer on private Unix sockets only (issue 34, hole 3);
SLURMCluster() speaks TLS and hands its workers the credentials."""

from __future__ import annotations

import contextlib
import getpass
import http.client
import json
import logging
import os
import re
import socket
import stat
import urllib.request
from pathlib import Path

import dask.config
import pytest
from distributed import Client, LocalCluster
from distributed.security import Security

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.job.dask_tls import dask_credentials
from aifactory_workbench.lab import dashboard
from aifactory_workbench.root.dask_config import write_dask_config
from aifactory_workbench.spawners.spawner import DASHBOARD_LINK_ENV

from .defaults import site_file


@pytest.fixture
def job_config(tmp_path):
    """Dask's config in a kernel of a JupyterLab job: the site's jobqueue.yaml and the job's credentials."""
    folder = tmp_path / "dask-tls"
    folder.mkdir(mode=0o700)
    env = dask_credentials(str(folder))
    etc = write_dask_config(load_site_config(site_file(tmp_path, "dask: {}\n")), tmp_path / "etc").parent
    config = dask.config.merge(dask.config.config, dask.config.collect(paths=[str(etc)], env=env))
    with dask.config.set(config):
        yield folder, env


def test_the_jobs_credentials_are_its_users_alone(job_config):
    folder, env = job_config
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["dask-cert.pem", "dask-key.pem"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    with pytest.raises(FileExistsError):  # made fresh, never into a file someone left there
        dask_credentials(str(folder))
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == str(folder / "dask-key.pem")


def refused(address: str, security: Security) -> bool:
    try:
        with Client(address, security=security, timeout=3) as c:
            c.run_on_scheduler(getpass.getuser)
    except Exception:  # OSError, TimeoutError, SSL errors: no answer, whichever way it is refused
        return True
    return False


def test_only_the_jobs_own_clients_reach_its_scheduler(job_config):
    # A LocalCluster as a notebook makes one: no security or dashboard address given.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:"), address
        with Client(cluster) as own:
            assert own.run_on_scheduler(getpass.getuser) == getpass.getuser()
        with Client(address, timeout=10) as other_kernel:  # another kernel of the same job: the job's config
            assert len(other_kernel.scheduler_info()["workers"]) == 1

        host_port = address.split("://", 1)[1]
        no_credentials = Security(require_encryption=False, tls_ca_file=None, tls_client_cert=None, tls_client_key=None)
        assert refused(f"tcp://{host_port}", no_credentials)
        assert refused(f"tls://{host_port}", Security.temporary())  # another tenant's own TLS


def tcp_listeners_of_this_process() -> list[tuple[str, int]]:
    """The TCP ports this process listens on (its sockets' inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, ours
            found.append(("127.0.0.1", int(fields[1].split(":")[1], 16)))
    return found


def answers_as_dask(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
            return r.read() == b"ok"
    except Exception:  # refused, not HTTP (the scheduler's TLS port): not a dashboard
        return False


def get_on_socket(path: str, url_path: str) -> tuple[int, bytes]:
    """GET url_path from an HTTP server on the Unix socket at path."""
    connection = http.client.HTTPConnection("localhost", timeout=10)
    connection.sock = socket.socket(socket.AF_UNIX)
    connection.sock.connect(path)
    connection.request("GET", url_path)
    reply = connection.getresponse()
    return reply.status, reply.read()


@pytest.fixture
def in_a_jupyterlab_job(tmp_path, monkeypatch):
    """The folder of dashboard notes a JupyterLab job has, and its link template (the spawner's)."""
    notes = tmp_path / "notes"
    monkeypatch.setenv(dashboard.FOLDER_ENV, str(notes))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    with dask.config.set({"distributed.dashboard.link": DASHBOARD_LINK_ENV["DASK_DISTRIBUTED__DASHBOARD__LINK"]}):
        yield notes


def test_dashboards_answer_on_private_unix_sockets_never_on_a_tcp_port(job_config, in_a_jupyterlab_job):
    """Issue 34, hole 3: a port of loopback answers every job of the node and every user of the
    login node. The scheduler's and the worker's HTTP servers (dashboard, /json, /metrics) answer
    on Unix sockets in folders of mode 700 instead; the Dask panel's note names the scheduler's."""
    notes = in_a_jupyterlab_job
    # LocalCluster asks for ':8787' (all interfaces), its worker for a port of its own.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster, Client(cluster) as client:
        assert not [p for _, p in tcp_listeners_of_this_process() if answers_as_dask(p)]
        scheduler, (worker,) = cluster.scheduler, cluster.workers.values()
        sockets = [scheduler.http_server.socket_path, worker.http_server.socket_path]
        for path in sockets:
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700, path
            assert get_on_socket(path, "/health") == (200, b"ok")
        status, identity = get_on_socket(sockets[0], "/json/identity.json")
        assert status == 200 and json.loads(identity)["type"] == "Scheduler"

        # The scheduler's dashboard "port" is its name, under which the Dask panel finds it
        # and its owner opens it through her server; a worker advertises none.
        (note,) = dashboard.running_dashboards(notes)
        assert note["socket"] == sockets[0] and note["address"] == cluster.scheduler_address
        assert cluster.dashboard_link == f"/user/alice/aifactory/dask/{note['name']}/status"
        assert client.dashboard_link == cluster.dashboard_link
        assert dashboard.dashboard_note(notes, note["name"]) == note
        (info,) = client.scheduler_info()["workers"].values()
        assert info["services"]["dashboard"] is None
    assert dashboard.running_dashboards(notes) == []
    assert not any(os.path.exists(os.path.dirname(path)) for path in sockets)  # removed with them


def test_outside_a_jupyterlab_job_the_scheduler_notes_nothing_and_logs_its_socket(job_config, monkeypatch, caplog):
    monkeypatch.delenv(dashboard.FOLDER_ENV, raising=False)
    caplog.set_level(logging.INFO, logger=dashboard.__name__)
    with LocalCluster(n_workers=0, processes=False) as cluster:
        path = cluster.scheduler.http_server.socket_path
        assert get_on_socket(path, "/health") == (200, b"ok")
        assert f"ssh -L 8787:{path}" in caplog.text
    assert not os.path.exists(path)


def test_only_a_named_note_in_the_jobs_folder_is_a_dashboard(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    alive = f"{os.getpid()}-0123abcd"
    (notes / f"{alive}.json").write_text(json.dumps({"name": alive, "socket": "/x/dashboard.sock", "started": 1}))
    # A note whose process has gone (killed before its teardown) is not a running cluster.
    (notes / "999999999-0123abcd.json").write_text(json.dumps({"name": "999999999-0123abcd", "socket": "/y"}))
    assert [n["name"] for n in dashboard.running_dashboards(notes)] == [alive]
    assert dashboard.dashboard_note(notes, alive)["socket"] == "/x/dashboard.sock"
    for name in ("../notes/" + alive, alive + "/..", "8787", "", "1-0123abcd"):
        assert dashboard.dashboard_note(notes, name) is None, name
    assert dashboard.dashboard_note("", alive) is None  # outside a JupyterLab job: no route to any


def test_the_dask_panel_opens_a_dashboard_at_its_name_under_the_servers_address():
    from aifactory_workbench.lab.dashboard_proxy import ROUTE, dashboard_link

    assert dashboard_link("/user/alice/", "12-0123abcd") == "/user/alice/aifactory/dask/12-0123abcd/status"
    assert re.fullmatch(ROUTE, "aifactory/dask/12-0123abcd/individual-plots.json").groups() == (
        "12-0123abcd",
        "/individual-plots.json",
    )


def test_slurmcluster_speaks_tls_and_gives_its_workers_the_credentials(job_config):
    from dask_jobqueue import SLURMCluster

    folder, _ = job_config
    with SLURMCluster(cores=1, memory="1GiB") as cluster:  # submits nothing until scaled
        assert cluster.scheduler_address.startswith("tls://"), cluster.scheduler_address
        assert cluster.scheduler.http_server.socket_path  # its dashboard on a Unix socket
        script = cluster.job_script()
    worker_args = (
        f"--tls-ca-file {folder}/dask-cert.pem --tls-cert {folder}/dask-cert.pem --tls-key {folder}/dask-key.pem"
    )
    assert worker_args in script and "tls://" in script


def test_outside_a_jupyterlab_job_the_launcher_makes_no_credentials(monkeypatch):
    from aifactory_workbench.job import launcher

    made = []
    monkeypatch.setattr(launcher, "dask_credentials", lambda folder: made.append(folder) or {})
    monkeypatch.delenv(launcher.DASK_TLS_ENV, raising=False)
    monkeypatch.setattr(launcher, "report_port_with_retries", lambda port, env: (_ for _ in ()).throw(OSError("stop")))
    assert launcher.main(["/x/jupyterhub-singleuser"]) == 3 and made == []
    monkeypatch.setenv(launcher.DASK_TLS_ENV, "/nonexistent/folder")
    monkeypatch.setattr(launcher, "dask_credentials", lambda folder: (_ for _ in ()).throw(OSError("no such folder")))
    assert launcher.main(["/x/jupyterhub-singleuser"]) == 4  # never a server without them
    assert "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION" not in os.environ
