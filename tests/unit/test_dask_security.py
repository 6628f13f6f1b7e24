"""Issue 21, hole 1, without daemons: the Dask config a JupyterLab job gives its kernels (its own
TLS credentials, job/launcher.py) and the site's (hub/dask_config.py, the lab/dashboard.py
preload). A client without the job's credentials, or with credentials of its own, is refused;
the job's own client works; dashboards answer on loopback only; SLURMCluster() speaks TLS and
hands its workers the credentials."""

from __future__ import annotations

import getpass
import os
import stat
import urllib.request

import dask.config
import pytest
from distributed import Client, LocalCluster
from distributed.comm import get_tcp_server_addresses
from distributed.security import Security

from aifactory_workbench.hub.dask_config import write_dask_config
from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.job.dask_tls import dask_credentials

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


def test_only_the_jobs_own_clients_reach_its_scheduler_and_its_dashboard_stays_on_loopback(job_config):
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

        # LocalCluster asks for ':8787' (all interfaces); the preload moved it to loopback.
        server = cluster.scheduler.http_server
        assert {a[0] for a in get_tcp_server_addresses(server)} == {"127.0.0.1"}
        port = cluster.scheduler.services["dashboard"].port
        assert cluster.dashboard_link.endswith(f":{port}/status")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert r.status == 200


def test_slurmcluster_speaks_tls_and_gives_its_workers_the_credentials(job_config):
    from dask_jobqueue import SLURMCluster

    folder, _ = job_config
    with SLURMCluster(cores=1, memory="1GiB") as cluster:  # submits nothing until scaled
        assert cluster.scheduler_address.startswith("tls://"), cluster.scheduler_address
        assert {a[0] for a in get_tcp_server_addresses(cluster.scheduler.http_server)} == {"127.0.0.1"}
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
