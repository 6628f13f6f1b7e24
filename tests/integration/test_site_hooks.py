"""Issue 35, item 7: a site's own commands before JupyterLab (its site file, root's), its Lmod,
JupyterLab's ports in the site's range, and the login shells' profile on configless SLURM."""

from __future__ import annotations

import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LOGIN_NODE, REPO, HubProcess, execute_in_kernel, launch, wait_for

USER = "alice"
#: The mini cluster's climate-tools module (cluster/modules, in Lmod's tree on every node), and
#: a variable of the site's own.
PROLOGUE = ["module load climate-tools/1.0", "export AIFW_SITE_HOOK=ran"]
LMOD = "/usr/share/lmod/lmod/init/profile"
#: Ports the nodes' firewalls would open to the hub (none of them is in use on the nodes).
PORTS = [47110, 47119]


@pytest.fixture(scope="module")
def hooked_hub() -> Iterator[HubProcess]:
    hub = launch(singleuser={"prologue": PROLOGUE, "lmod_init": LMOD, "port_range": PORTS})
    yield hub
    hub.shutdown()


def job_log(user: str, job_id: str) -> str:
    return (Path(pwd.getpwnam(user).pw_dir) / ".aifactory" / "logs" / f"jupyterlab-{job_id}.log").read_text()


@pytest.mark.slow
def test_the_sites_commands_run_before_jupyterlab_and_its_port_is_in_the_sites_range(hooked_hub: HubProcess):
    hub = hooked_hub
    try:
        hub.start_ready(USER)
        server = hub.server(USER)
        said = job_log(USER, server["state"]["job_id"])  # batchspawner's
        port = int(re.search(r"JupyterLab serves on port (\d+)", said).group(1))
        assert PORTS[0] <= port <= PORTS[1] and server["state"]["port"] == port, said
        # The site kernel (which loads no module itself) sees what the site's commands set: the
        # module's variables and the site's own, and kernels that load modules get the site's Lmod.
        names = ("CLIMATE_TOOLS_VERSION", "AIFW_SITE_HOOK", "AIFACTORY_LMOD_INIT")
        code = f"import os; print(*(os.environ.get(k) for k in {names!r}))"
        said = execute_in_kernel(hub, USER, hub.user_token(USER), code)
        assert said.split() == ["1.0", "ran", LMOD], said
    finally:
        hub.stop(USER)


@pytest.mark.slow
def test_a_failing_site_command_ends_the_job_before_jupyterlab_naming_it():
    hub = launch(singleuser={"prologue": ["module load no-such-module/9"], "lmod_init": LMOD})
    try:
        hub.start(USER)
        failure = wait_for(lambda: hub.last_failure(USER), 120, "the start to fail")
        job_id = re.search(r"JupyterLab job (\d+) ended before JupyterLab started", failure).group(1)
        said = job_log(USER, job_id)
        assert "the site's command before JupyterLab failed" in said and "module load no-such-module/9" in said, said
        assert "JupyterLab serves on port" not in said
    finally:
        hub.stop(USER)
        hub.shutdown()


def login_scheduler_host(tmp_path: Path, slurm_conf: str | None, prepare: str = "") -> str:
    """The scheduler address that the login shells' profile script (as `aifactory-site install`
    writes it, here for root's group) exports, run by sh after ``prepare`` (in a mount namespace
    of its own), with SLURM_CONF naming ``slurm_conf`` (None: unset)."""
    template = REPO / "config" / "profile.d" / "aifactory-dask.sh.in"
    venv = str(Path(sys.executable).parent.parent)
    script = template.read_text().replace("@USERS_GROUP@", "root").replace("@VENV@", venv)
    probe = f'{prepare}\n{script}\necho "HOST=$DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST"'
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **({"SLURM_CONF": slurm_conf} if slurm_conf else {})}
    run = subprocess.run(["unshare", "-m", "sh", "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    return run.stdout.rsplit("HOST=", 1)[-1].strip()


def test_the_login_profile_finds_the_controller_in_slurm_conf_or_from_configless_slurm(tmp_path):
    """The profile read /etc/slurm/slurm.conf alone, which a configless login node has not: there
    SLURM's commands read what slurmd or sackd fetched from the controller (/run/slurm/conf), and
    so does the profile, through scontrol. $SLURM_CONF is read where it is set."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\nSlurmctldHost=ctld(127.0.0.1)\n")
    assert login_scheduler_host(tmp_path, str(conf)) == "127.0.0.1"
    assert login_scheduler_host(tmp_path, None) == LOGIN_NODE.address  # /etc/slurm/slurm.conf's
    (tmp_path / "empty").mkdir()
    shutil.copy("/etc/slurm/slurm.conf", tmp_path / "fetched.conf")
    configless = (
        f"mount --bind {tmp_path / 'empty'} /etc/slurm && mkdir -p /run/slurm && mount -t tmpfs tmpfs /run/slurm"
        f" && mkdir /run/slurm/conf && cp {tmp_path / 'fetched.conf'} /run/slurm/conf/slurm.conf || exit 9"
    )
    assert login_scheduler_host(tmp_path, None, configless) == LOGIN_NODE.address
