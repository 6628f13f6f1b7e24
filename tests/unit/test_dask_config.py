"""jobqueue.yaml from the site config: what SLURMCluster() with no arguments will do."""

import dask.config
import yaml

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.root.dask_config import write_dask_config
from aifactory_workbench.spawners.spawner import DASHBOARD_LINK_ENV

from .defaults import site_file as site_file_with


def test_jobqueue_yaml_follows_the_site_config(tmp_path):
    site_file = site_file_with(tmp_path, "dask:\n  partition: acc\n  qos: interactive\n  cores: 4\n  memory: 8G\n")
    path = write_dask_config(load_site_config(site_file), tmp_path / "etc")
    slurm = yaml.safe_load(path.read_text())["jobqueue"]["slurm"]
    assert slurm["queue"] == "acc" and slurm["cores"] == 4 and slurm["memory"] == "8GiB"
    assert "--qos=interactive" in slurm["job-extra-directives"] and "--no-requeue" in slurm["job-extra-directives"]
    assert slurm["python"] == "/opt/aifactory/venv/bin/python" and slurm["walltime"] == "01:00:00"
    # The dashboard first on a port of loopback, never on an address other tenants reach (issue 21),
    # then on a private Unix socket: the preload, for schedulers and workers (issue 34, hole 3).
    assert slurm["scheduler-options"] == {"dashboard_address": "127.0.0.1:0"}
    distributed = yaml.safe_load(path.read_text())["distributed"]
    preload = ["aifactory_workbench.lab.dashboard"]
    assert distributed["scheduler"]["preload"] == preload and distributed["worker"]["preload"] == preload
    # Dask reads it as its own config (as it does from {sys.prefix}/etc/dask).
    loaded = dask.config.collect(paths=[str(tmp_path / "etc")], env={})
    assert loaded["jobqueue"]["slurm"]["queue"] == "acc"


def test_dashboard_link_goes_through_the_users_server():
    link = DASHBOARD_LINK_ENV["DASK_DISTRIBUTED__DASHBOARD__LINK"]
    # (A scheduler's dashboard "port" is its name: lab/dashboard.py, lab/dashboard_proxy.py.)
    assert link.format(JUPYTERHUB_SERVICE_PREFIX="/user/alice/", port="12-0123abcd") == (
        "/user/alice/aifactory/dask/12-0123abcd/status"
    )


def test_the_hub_refuses_to_start_when_users_dask_reads_something_else(tmp_path):
    import pytest

    from aifactory_workbench.hub.site import SiteConfigError
    from aifactory_workbench.root.dask_config import check_dask_config

    site_file = site_file_with(tmp_path, f"singleuser:\n  venv: {tmp_path}\ndask:\n  cores: 4\n")
    site = load_site_config(site_file)
    with pytest.raises(SiteConfigError, match="as root, run aifactory-site install-dask"):
        check_dask_config(site)  # nothing installed yet
    write_dask_config(site)
    check_dask_config(site)
    site_file = site_file_with(tmp_path, f"singleuser:\n  venv: {tmp_path}\ndask:\n  cores: 8\n")
    with pytest.raises(SiteConfigError, match="section 'dask'"):
        check_dask_config(load_site_config(site_file))


def test_a_worker_job_spills_into_a_fresh_folder_of_its_own_and_removes_it(tmp_path):
    """Spill space used to be /tmp/dask-scratch-space, shared by every user (issue 11, hole 2)."""
    import subprocess

    from dask_jobqueue.slurm import SLURMJob

    site_file = site_file_with(tmp_path, f"dask:\n  local_directory: {tmp_path / 'scratch'}\n")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "dask-scratch-space").mkdir()  # what another user could have planted
    write_dask_config(load_site_config(site_file), tmp_path / "etc")
    config = dask.config.collect(paths=[str(tmp_path / "etc")], env={})
    with dask.config.set({f"jobqueue.slurm.{k}": v for k, v in config["jobqueue"]["slurm"].items()}):
        script = SLURMJob(scheduler="tcp://127.0.0.1:8786", name="w", python="/bin/echo").job_script()
    assert "--local-directory $AIFW_PRIVATE" in script and "/tmp/aifw-dask" not in script
    run = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "77"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    used = run.stdout.split("--local-directory ")[1].split()[0]
    assert used.startswith(str(tmp_path / "scratch" / "aifw-dask-77.")), used
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["dask-scratch-space"]  # removed again


def _login_shell_env(host: str) -> dict[str, str]:
    """What /etc/profile.d/aifactory-dask.sh exports on login node ``host`` (and sbatch carries)."""
    return {
        "DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST": "10.77.0.1",
        "AIFACTORY_LOGIN_DASK_HOST": host,
        "AIFACTORY_LOGIN_DASK_VARS": "DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST PATH",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "/home/alice/.aifactory/dask-tls/login/dask-cert.pem",
        "DASK_TEMPORARY_DIRECTORY": "/home/alice/.aifactory/dask-scratch",
        "PATH": "/usr/bin:/bin",
    }


def test_a_login_shells_scheduler_address_stays_on_its_login_node():
    """Issue 35, item 8: sbatch exports the login shell's environment into the job, where
    SLURMCluster() tried to bind the login node's address (Errno 99)."""
    from aifactory_workbench.job.dask_env import leave_login_settings

    on_login = _login_shell_env("login1")
    assert leave_login_settings(on_login, host="login1") == [] and on_login == _login_shell_env("login1")
    in_job = _login_shell_env("login1")
    assert leave_login_settings(in_job, host="mn5-g01") == ["DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST"]
    # The address and the record go; the TLS credentials and scratch (shared home) stay, and
    # only Dask's settings are ever dropped, whatever the list names.
    assert sorted(in_job) == ["DASK_DISTRIBUTED__COMM__TLS__CA_FILE", "DASK_TEMPORARY_DIRECTORY", "PATH"]
    untouched = {"DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST": "10.0.0.5"}  # a user's own, no record
    assert leave_login_settings(untouched, host="mn5-g01") == [] and len(untouched) == 1


def test_the_venvs_pth_drops_them_before_dask_reads_its_config(tmp_path):
    """The .pth line as Python's site runs it, in a fresh interpreter, then Dask's config."""
    import os
    import subprocess
    import sys

    from aifactory_workbench.job.dask_env import PTH_LINE, PTH_NAME

    (tmp_path / PTH_NAME).write_text(PTH_LINE)
    # (-S: no .pth of the venv's own runs; its packages are importable, as they are here (an
    # editable install's are on the path through its own .pth), and then this folder's .pth runs.)
    probe = (
        f"import site, sys; sys.path += {[path for path in sys.path if path]!r}; site.addsitedir({str(tmp_path)!r}); "
        "import dask.config; print(dask.config.get('jobqueue.slurm.scheduler-options.host', 'none'))"
    )

    def host_seen(login_host: str) -> str:
        env = {**os.environ, **_login_shell_env(login_host)}
        run = subprocess.run([sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and not run.stderr, run.stderr
        return run.stdout.strip()

    assert host_seen(os.uname().nodename) == "10.77.0.1"  # on the login node: its own address
    assert host_seen("another-login-node") == "none"  # in a job elsewhere: Dask's own choice


def test_install_writes_the_pth_and_the_hub_checks_it(tmp_path):
    import pytest

    from aifactory_workbench.hub.site import SiteConfigError
    from aifactory_workbench.job.dask_env import PTH_LINE, PTH_NAME
    from aifactory_workbench.root.dask_config import check_dask_config, write_login_env_pth

    packages = tmp_path / "lib" / "python3.11" / "site-packages"
    packages.mkdir(parents=True)
    site = load_site_config(site_file_with(tmp_path, f"singleuser:\n  venv: {tmp_path}\n"))
    write_dask_config(site)
    with pytest.raises(SiteConfigError, match=f"{PTH_NAME} is missing or outdated"):
        check_dask_config(site)
    assert write_login_env_pth(site) is True and (packages / PTH_NAME).read_text() == PTH_LINE
    assert write_login_env_pth(site) is False  # already there
    check_dask_config(site)
