"""The job→hub channel with a real job's token: a port, and nothing else, is accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from .conftest import HubProcess, sh

MARKERS = [Path(f"/tmp/aifw-owned-{n}") for n in ("submit", "cancel", "prefix")]
HOSTILE = [
    {"port": 5000, "batch_submit_cmd": f"touch {MARKERS[0]}"},
    {"batch_cancel_cmd": f"touch {MARKERS[1]}"},
    {"exec_prefix": f"touch {MARKERS[2]};"},
    {"port": "5000; touch /tmp/aifw-owned-port"},
    {"port": 80},
    [5000],
    "port=5000",
]


def job_token(user: str) -> str:
    """What a job knows: JUPYTERHUB_API_TOKEN in its environment (read as root)."""
    pid = sh("pgrep", "-u", user, "-f", "jupyterhub-singleuser").split()[0]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"JUPYTERHUB_API_TOKEN="))


@pytest.mark.slow
def test_a_jobs_token_can_report_a_port_and_nothing_else(clean: HubProcess):
    hub = clean
    for marker in MARKERS:
        marker.unlink(missing_ok=True)
    hub.start_ready("alice")
    token = job_token("alice")
    url = f"{hub.url}/hub/api/aifactory/job-port"
    headers = {"Authorization": f"token {token}"}
    for body in HOSTILE:
        r = requests.post(url, json=body, headers=headers, timeout=10)
        assert r.status_code == 400, (body, r.status_code, r.text)
    # A valid report for a server that is not starting changes nothing either.
    assert requests.post(url, json={"port": 5000}, headers=headers, timeout=10).status_code == 409
    # batchspawner's own handler, which set any attribute, is gone.
    assert requests.post(f"{hub.url}/hub/api/batchspawner", json={"port": 5000}, headers=headers).status_code == 404
    # Stopping and starting again runs the spawner's real commands, not the posted ones.
    hub.stop("alice")
    hub.start_ready("alice")
    hub.stop("alice")
    assert not [m for m in MARKERS if m.exists()], "a posted command ran"
    assert not Path("/tmp/aifw-owned-port").exists()
    assert (
        subprocess.run(
            ["squeue", "-h", "-u", "alice", "--name", "aifw-test-jupyterlab"], capture_output=True, text=True
        ).stdout
        == ""
    )
