"""The hub refuses to start on a wrong site file, and says why without a traceback."""

import subprocess

import yaml

from .conftest import HUB_VENV, REPO


def start_with(tmp_path, site: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "site.yaml"
    hub = {"state_dir": str(tmp_path / "s"), "public_url": "http://hub.localhost:8000/", **site.get("hub", {})}
    path.write_text(yaml.safe_dump({**site, "hub": hub}))
    return subprocess.run(
        [str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(REPO / "jupyterhub_config.py")],
        env={"AIFACTORY_SITE_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_hub_refuses_a_wrong_site_file(tmp_path):
    result = start_with(tmp_path, {"slurm": {"memory": "lots"}})
    assert result.returncode != 0
    assert "key 'slurm.memory': value 'lots' is not accepted; accepted: a memory size" in result.stderr
    assert "Traceback" not in result.stderr


def test_oidc_login_names_what_it_lacks_before_the_hub_starts(tmp_path):
    result = start_with(tmp_path, {"auth": {"method": "oidc", "oidc_issuer": "http://127.0.0.1:9/"}})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "key 'auth.oidc_client_id': value '' is not accepted with auth.method oidc; it is required" in result.stderr
    secret = tmp_path / "secret"
    secret.write_text("x" * 32)
    unreachable = {
        "auth": {
            "method": "oidc",
            "oidc_issuer": "http://127.0.0.1:9/",
            "oidc_client_id": "hub",
            "oidc_client_secret_file": str(secret),
        },
        "hub": {"public_url": "https://hub.example.eu/"},
    }
    result = start_with(tmp_path, unreachable)
    assert "key 'auth.oidc_issuer': 'http://127.0.0.1:9/' gives no discovery document" in result.stderr
