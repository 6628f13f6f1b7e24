"""jobqueue.yaml from the site config: what SLURMCluster() with no arguments will do."""

import dask.config
import yaml

from hub.dask_config import write_dask_config
from hub.site import load_site_config
from spawners.spawner import DASHBOARD_LINK_ENV


def test_jobqueue_yaml_follows_the_site_config(tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text("dask:\n  partition: acc\n  qos: interactive\n  cores: 4\n  memory: 8G\n")
    path = write_dask_config(load_site_config(site_file), tmp_path / "etc")
    slurm = yaml.safe_load(path.read_text())["jobqueue"]["slurm"]
    assert slurm["queue"] == "acc" and slurm["cores"] == 4 and slurm["memory"] == "8GiB"
    assert "--qos=interactive" in slurm["job-extra-directives"] and "--no-requeue" in slurm["job-extra-directives"]
    assert slurm["python"] == "/opt/aifactory/venv/bin/python" and slurm["walltime"] == "01:00:00"
    # Dask reads it as its own config (as it does from {sys.prefix}/etc/dask).
    loaded = dask.config.collect(paths=[str(tmp_path / "etc")], env={})
    assert loaded["jobqueue"]["slurm"]["queue"] == "acc"


def test_dashboard_link_goes_through_the_users_server():
    link = DASHBOARD_LINK_ENV["DASK_DISTRIBUTED__DASHBOARD__LINK"]
    assert link.format(JUPYTERHUB_SERVICE_PREFIX="/user/alice/", port=8787) == "/user/alice/proxy/8787/status"
