"""The hub runs unprivileged and reaches SLURM as users only for submit and cancel."""

from __future__ import annotations

import pwd
import re
import subprocess
from pathlib import Path

from .conftest import HubProcess, sh

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
    assert rule.startswith("(%aifactory-users) SETENV: NOPASSWD:")
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
