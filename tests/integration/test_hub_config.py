"""The hub refuses to start on a wrong site file, and says why without a traceback."""

import subprocess

import yaml

from .conftest import REPO, VENV


def test_hub_refuses_a_wrong_site_file(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"slurm": {"memory": "lots"}, "hub": {"state_dir": str(tmp_path / "s")}}))
    result = subprocess.run(
        [str(VENV / "bin" / "jupyterhub"), "-f", str(REPO / "jupyterhub_config.py")],
        env={"AIFACTORY_SITE_CONFIG": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "key 'slurm.memory': value 'lots' is not accepted; accepted: a memory size" in result.stderr
    assert "Traceback" not in result.stderr
