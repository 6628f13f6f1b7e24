"""Issue 34, hole 5: a JupyterLab job whose batch script is killed (SIGKILL, as SLURM sends once
KillWait has passed; its trap then never runs) used to leave its private folder, with its TLS key, in /tmp, and its Dask
credentials in the home. The site's epilog (root's, as the job ends) removes the folder in /tmp;
the user's next job removes what her killed jobs left, and nothing of another user's or of a
job still running. (The mini cluster's nodes share this machine's /tmp.)

The test's user is ``instructor``, whose jobs no other test starts: a job of hers that another
test started meanwhile would itself sweep what this test watches. The other user is ``admin``,
for whom the hub starts nothing."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import HubProcess, queued_jobs, sh, wait_for
from .jobs import wait_gone

pytestmark = pytest.mark.integration

USER, OTHER = "instructor", "admin"
#: States in which a job's epilog has not yet run to its end.
NOT_ENDED = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}


def private_folders(job_id: str) -> list[str]:
    return glob.glob(f"/tmp/aifw-job-{job_id}.*")


def dask_credentials(user: str, job_id: str) -> list[str]:
    return glob.glob(f"{pwd.getpwnam(user).pw_dir}/.aifactory/dask-tls/job-{job_id}.*")


def planted(user: str, job_id: str) -> Path:
    """A folder as a job of ``user`` makes it (mktemp -d), with a key in it."""
    folder = Path(sh("runuser", "-u", user, "--", "mktemp", "-d", f"/tmp/aifw-job-{job_id}.XXXXXXXXXX").strip())
    sh("runuser", "-u", user, "--", "sh", "-c", f"echo key > {folder}/keyfile.pem")
    return folder


def batch_shell(job_id: str, user: str) -> int:
    """The pid of the job's batch script (slurmd's spool: .../job00042/slurm_script), the user's."""
    uid = pwd.getpwnam(user).pw_uid
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if proc.stat().st_uid == uid and f"/job{int(job_id):05d}/slurm_script".encode() in b" ".join(argv):
                return int(proc.name)
        except (OSError, ValueError):
            continue
    raise AssertionError(f"no batch script of job {job_id} runs")


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it (by /proc's parent ids)."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def ended(job_id: str) -> bool:
    return sh("squeue", "-h", "-j", job_id, "-o", "%T", check=False).strip() not in NOT_ENDED


@pytest.mark.slow
def test_a_killed_jobs_key_goes_with_the_epilog_and_her_next_job_sweeps_the_rest(clean: HubProcess):
    hub = clean
    user = pwd.getpwnam(USER)
    hub.start_ready(USER)
    (job_id,) = queued_jobs(USER)
    (private,) = private_folders(job_id)
    (credentials,) = dask_credentials(USER, job_id)
    assert Path(private).stat().st_uid == user.pw_uid
    # As job 32 ended: its batch step killed (SIGKILL to every process of it, the script and
    # JupyterLab, as SLURM does once KillWait has passed), so its trap never ran. (scancel
    # --signal=KILL would not do: SLURM makes it a cancel, TERM first, which the trap answers.
    # Killing the script alone would leave JupyterLab running: the mini cluster's proctrack
    # follows a job's processes by their parent, and an orphan is lost to it.)
    for pid in process_tree(batch_shell(job_id, USER)):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: ended(job_id), 90, f"job {job_id} ended")
    wait_for(lambda: not private_folders(job_id), 15, f"the epilog removed {private}", fail=False)
    assert not private_folders(job_id), f"job {job_id}'s private folder (its TLS key) outlived it"
    wait_gone(hub, USER, 60)
    assert Path(credentials).is_dir(), "the epilog touches no home: the next job sweeps it"

    # What a node without the epilog would keep of the killed job, another user's folder, and
    # the folder of a job of hers that still runs.
    stale = planted(USER, job_id)
    others = planted(OTHER, job_id)
    running = sh(
        "runuser",
        "-u",
        USER,
        "--",
        "sbatch",
        "--parsable",
        "--job-name=aifw-test-leftovers",
        "--mem=100M",
        "--time=10",
        "--output=/dev/null",
        "--chdir=/tmp",
        "--wrap",
        "sleep 300",
    ).strip()
    try:
        wait_for(lambda: sh("squeue", "-h", "-j", running, "-o", "%T").strip() == "RUNNING", 60, f"job {running} runs")
        still_running = planted(USER, running)
        hub.start_ready(USER)
        (new_job,) = queued_jobs(USER)
        assert not stale.exists(), "her next job left what her killed job kept in /tmp"
        assert not Path(credentials).exists(), "her next job left her killed job's Dask credentials"
        assert (others / "keyfile.pem").exists(), f"{OTHER}'s folder is not hers to sweep"
        assert (still_running / "keyfile.pem").exists(), "a running job's folder was swept"
        assert len(private_folders(new_job)) == 1 and len(dask_credentials(USER, new_job)) == 1
    finally:
        subprocess.run(["scancel", running], check=False)
        for folder in (stale, others, *(Path(p) for p in private_folders(running))):
            shutil.rmtree(folder, ignore_errors=True)
