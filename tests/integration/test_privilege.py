"""The hub runs unprivileged and reaches SLURM as users only for submit and cancel."""

from __future__ import annotations

import pwd
import re
import subprocess
import time
from pathlib import Path

from .conftest import VENV, HubProcess, sh

HUB_USER = "aifactory-hub"
ALLOWED = {
    "/usr/bin/sbatch ^--parsable$",
    "/usr/bin/sbatch ^--test-only$",
    "/usr/bin/scancel ^[0-9]+$",
    "/usr/bin/scancel ^--name aifw-dask-[0-9]+$",
}


def as_hub(*argv: str) -> subprocess.CompletedProcess:
    as_user = ["setpriv", f"--reuid={HUB_USER}", f"--regid={HUB_USER}", "--init-groups"]
    return subprocess.run([*as_user, *argv], capture_output=True, text=True, cwd="/tmp")


def test_the_hub_and_its_proxy_do_not_run_as_root(hub: HubProcess):
    status = Path(f"/proc/{hub.process.pid}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    assert uid == pwd.getpwnam(HUB_USER).pw_uid and uid != 0
    assert sh("pgrep", "-u", HUB_USER, "-f", "configurable-http-proxy").split()


def test_sudo_lets_the_hub_submit_and_cancel_as_users_and_nothing_else():
    listing = sh("sudo", "-l", "-U", HUB_USER)
    rules = listing.split("may run the following commands on")[1].splitlines()[1:]
    (rule,) = [r.strip() for r in rules if r.strip()]
    assert rule.startswith("(%aifactory-users) NOPASSWD:") and "SETENV" not in listing
    assert {c.strip() for c in rule.split("NOPASSWD:", 1)[1].split(", ")} == ALLOWED
    refused = [
        ["-u", "alice", "--", "id"],
        ["-u", "root", "--", "scancel", "1"],
        ["-u", "alice", "--", "scancel", "1 --user=bob"],
        ["-u", "alice", "--", "sbatch", "--wrap", "id"],
        ["-u", "alice", "--", "sbatch", "--test-only", "--wrap", "id"],
    ]
    for argv in refused:
        assert as_hub("sudo", "-n", *argv).returncode != 0, argv


def test_the_hub_cannot_pass_a_variable_to_a_users_command():
    """A compromised hub account tries to run a user's scancel with its own library loaded."""
    injected = as_hub("sudo", "-n", "-u", "alice", "LD_PRELOAD=/tmp/aifw-evil.so", "/usr/bin/scancel", "1")
    assert injected.returncode != 0 and "not allowed to set the following environment variables" in injected.stderr
    evil = "LD_PRELOAD=/tmp/aifw-evil.so"
    preserved = as_hub("env", evil, "sudo", "-n", "-E", "-u", "alice", "/usr/bin/scancel", "1")
    assert preserved.returncode != 0 and "not allowed to preserve the environment" in preserved.stderr


def test_only_the_jobs_own_variables_reach_a_submitted_job(tmp_path):
    out = Path(f"/tmp/aifw-env-{tmp_path.name}.txt")
    script = f"#!/bin/bash\n#SBATCH --export=ALL\n#SBATCH --output=/dev/null\n#SBATCH --mem=100M\nenv > {out}\n"
    submit = ["env", "JUPYTERHUB_USER=alice", "AIFW_INJECTED=1", "LD_LIBRARY_PATH=/tmp/evil"]
    job = subprocess.run(
        ["setpriv", f"--reuid={HUB_USER}", f"--regid={HUB_USER}", "--init-groups", *submit,
         "sudo", "-n", "-u", "alice", "/usr/bin/sbatch", "--parsable"],
        input=script, capture_output=True, text=True, cwd="/tmp",
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    try:
        for _ in range(120):
            if out.exists() and "JUPYTERHUB_USER" in out.read_text():
                break
            time.sleep(0.5)
        names = {line.split("=", 1)[0] for line in out.read_text().splitlines()}
        assert "JUPYTERHUB_USER" in names
        assert "AIFW_INJECTED" not in names and "LD_LIBRARY_PATH" not in names
    finally:
        out.unlink(missing_ok=True)


def test_the_hub_cannot_change_what_users_dask_loads():
    """Dask loads every YAML in the venv's etc/dask (preloads, job prologues): the hub account
    writing there would run code as every user (issue 11, hole 5)."""
    folder = VENV / "etc" / "dask"
    planted = as_hub("sh", "-c", f"echo 'distributed: {{worker: {{preload: [/tmp/evil.py]}}}}' > {folder}/zz-evil.yaml")
    assert planted.returncode != 0 and not (folder / "zz-evil.yaml").exists()
    replace = f"cp {folder}/jobqueue.yaml /tmp/aifw-jq && mv -f /tmp/aifw-jq {folder}/jobqueue.yaml"
    replaced = as_hub("sh", "-c", replace)
    assert replaced.returncode != 0
    for path in (folder, folder / "jobqueue.yaml"):
        assert path.stat().st_uid == 0 and not path.stat().st_mode & 0o022, path
